//! The pipeline against in-memory fakes of the two HSS ports and a real (temporary) store:
//! listing rules, batching, splitting and stopping, with no simulator and no clock but the
//! test's own.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::report::BatchState;
use super::{Pipeline, TargetApi};
use crate::config::Settings;
use crate::domain::{BatchFailure, Clock, Image, ImageIdentity, ImageType, Shutdown, Target};
use crate::domain::{NativeScanPolicy, PayPerScan};
use crate::hss::transport::error::HssError;
use crate::hss::{
    AccountFacts, ApiInUse, ImagePage, ImageSource, PageRequest, Receipt, ScanSubmitter, SendGate,
    SourceError, SubmitError,
};
use crate::store::{self, Fence, LeaseAttempt, Store, SyncOutcome};

const START: i64 = 1_800_000_000_000;

/// A listing served from memory: `images` in pages, `total_num` as given (default: the
/// true count), and the pages at the given offsets failing.
#[derive(Debug, Default)]
struct FakeSource {
    images: Mutex<Vec<Image>>,
    total_num: Mutex<Option<Option<i64>>>,
    failing_offsets: Mutex<Vec<u32>>,
    refreshed: Mutex<Vec<ImageType>>,
}

#[async_trait]
impl ImageSource for FakeSource {
    fn max_offset(&self) -> u32 {
        2_000_000
    }

    async fn refresh(&self, image_type: &ImageType) -> Result<(), SourceError> {
        self.refreshed.lock().unwrap().push(image_type.clone());
        Ok(())
    }

    async fn page(&self, request: &PageRequest) -> Result<ImagePage, SourceError> {
        if self
            .failing_offsets
            .lock()
            .unwrap()
            .contains(&request.offset)
        {
            return Err(SourceError::from(HssError::Request {
                call: "fake",
                detail: format!("page at {} fails", request.offset),
            }));
        }
        let images: Vec<Image> = self
            .images
            .lock()
            .unwrap()
            .iter()
            .filter(|i| i.image_type == request.image_type)
            .cloned()
            .collect();
        let total = images.len() as i64;
        let page = images
            .into_iter()
            .skip(request.offset as usize)
            .take(request.limit as usize)
            .collect();
        Ok(ImagePage {
            total_num: self.total_num.lock().unwrap().unwrap_or(Some(total)),
            images: page,
            unreadable_fields: 0,
        })
    }
}

#[async_trait]
impl AccountFacts for FakeSource {
    async fn native_policy(&self) -> Result<Option<NativeScanPolicy>, SourceError> {
        Ok(None)
    }

    async fn pay_per_scan(&self) -> Result<Option<PayPerScan>, SourceError> {
        Ok(None)
    }
}

/// A submitter that records every call and answers from a script (then accepts).
#[derive(Debug)]
struct FakeSubmitter {
    max_batch: usize,
    calls: Mutex<Vec<Vec<String>>>,
    answers: Mutex<VecDeque<Result<Receipt, SubmitError>>>,
    /// Moves this clock on before the next call goes out: the process paused (a stop signal,
    /// a long wait for the rate limit) between recording a batch and sending it.
    pause_before_send: Mutex<Option<(Clock, Duration)>>,
}

impl FakeSubmitter {
    fn new(max_batch: usize) -> Self {
        FakeSubmitter {
            max_batch,
            calls: Mutex::new(Vec::new()),
            answers: Mutex::new(VecDeque::new()),
            pause_before_send: Mutex::new(None),
        }
    }

    fn answer_next(&self, answer: Result<(), SubmitError>) {
        self.answers
            .lock()
            .unwrap()
            .push_back(answer.map(|()| Receipt::default()));
    }

    fn call_sizes(&self) -> Vec<usize> {
        self.calls.lock().unwrap().iter().map(Vec::len).collect()
    }
}

#[async_trait]
impl ScanSubmitter for FakeSubmitter {
    fn max_batch(&self) -> usize {
        self.max_batch
    }

    fn api_in_use(&self) -> ApiInUse {
        ApiInUse::Current
    }

    async fn submit(
        &self,
        _image_type: &ImageType,
        images: &[&ImageIdentity],
        gate: &dyn SendGate,
    ) -> Result<Receipt, SubmitError> {
        let pause = self.pause_before_send.lock().unwrap().take();
        if let Some((clock, by)) = pause {
            clock.advance(by);
        }
        if let Err(why) = gate.may_send().await {
            return Err(SubmitError::StopRun(BatchFailure {
                message: format!("not sent: {why}"),
                ..BatchFailure::default()
            }));
        }
        self.calls
            .lock()
            .unwrap()
            .push(images.iter().map(|i| i.image_name.clone()).collect());
        self.answers
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Ok(Receipt::default()))
    }
}

fn image(n: usize) -> Image {
    let mut image = Image::example(&format!("app{n:04}"));
    image.hss_record_id = Some(n as i64);
    image
}

struct Rig {
    _dir: tempfile::TempDir,
    settings: Settings,
    store: Store,
    clock: Clock,
    source: Arc<FakeSource>,
    submitter: Arc<FakeSubmitter>,
    targets: Vec<TargetApi>,
    /// The leader lease, held for a day of the rig's clock.
    fence: Fence,
    listings: super::listing::ListingMemory,
}

async fn rig(images: usize, max_batch: usize, extra: &str) -> Rig {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        "[database]\nurl = \"sqlite://{}\"\n[hss]\npage_size = 50\n\
         [[targets]]\nname = \"t\"\nregion = \"r-1\"\nproject_id = \"p\"\n\
         image_types = [\"private_image\"]\ntrigger_swr_sync = true\n{extra}",
        dir.path().join("t.db").display()
    );
    let settings = Settings::from_toml_str(&text, "test.toml").expect("settings");
    let clock = Clock::manual(START);
    let store = store::open(&settings.database.url, clock.clone())
        .await
        .expect("store");
    let source = Arc::new(FakeSource::default());
    *source.images.lock().unwrap() = (0..images).map(image).collect();
    let submitter = Arc::new(FakeSubmitter::new(max_batch));
    let LeaseAttempt::Held(fence) = store
        .acquire_lease("rig", Duration::from_secs(86_400))
        .await
        .expect("lease")
    else {
        panic!("a new database's lease is free");
    };
    let target: Target = settings.targets[0].clone();
    let targets = vec![TargetApi {
        target,
        images: source.clone(),
        scans: submitter.clone(),
        facts: source.clone(),
    }];
    Rig {
        _dir: dir,
        settings,
        store,
        clock,
        source,
        submitter,
        targets,
        fence,
        listings: super::listing::ListingMemory::default(),
    }
}

impl Rig {
    fn pipeline(&self) -> Pipeline<'_> {
        Pipeline {
            settings: &self.settings,
            store: &self.store,
            targets: &self.targets,
            clock: &self.clock,
            started_at: START,
            listings: &self.listings,
        }
    }

    async fn present(&self) -> usize {
        self.store
            .present_images("t", &ImageType::Private)
            .await
            .expect("present")
            .len()
    }
}

#[tokio::test]
async fn a_complete_listing_writes_everything_and_a_second_one_nothing() {
    let r = rig(120, 100, "").await;
    let first = r.pipeline().sync_all(&Shutdown::new()).await.expect("sync");
    let report = &first.reports[0];
    assert_eq!(report.outcome, SyncOutcome::Complete, "{report:?}");
    assert_eq!(
        (report.counts.pages, report.counts.new, report.counts.seen),
        (3, 120, 120)
    );
    assert_eq!(
        *r.source.refreshed.lock().unwrap(),
        [ImageType::Private],
        "trigger_swr_sync asks the source to refresh"
    );
    assert!(report.reconciled.is_some(), "a complete sync is reconciled");
    assert_eq!(r.present().await, 120);
    let second = r.pipeline().sync_all(&Shutdown::new()).await.expect("sync");
    let c = second.reports[0].counts;
    assert_eq!((c.new, c.changed, c.deleted), (0, 0, 0));
}

#[tokio::test]
async fn only_a_complete_listing_deletes() {
    let r = rig(120, 100, "").await;
    r.pipeline().sync_all(&Shutdown::new()).await.expect("sync");
    r.source.images.lock().unwrap().truncate(100);

    // A failing page: partial, nothing deleted.
    r.source.failing_offsets.lock().unwrap().push(50);
    let partial = r.pipeline().sync_all(&Shutdown::new()).await.expect("sync");
    assert_eq!(partial.reports[0].outcome, SyncOutcome::Partial);
    assert!(partial.reports[0].reconciled.is_none());
    assert_eq!(r.present().await, 120);

    // No readable total: partial too.
    r.source.failing_offsets.lock().unwrap().clear();
    *r.source.total_num.lock().unwrap() = Some(None);
    let unproved = r.pipeline().sync_all(&Shutdown::new()).await.expect("sync");
    assert_eq!(unproved.reports[0].outcome, SyncOutcome::Partial);
    assert_eq!(r.present().await, 120);

    // Complete: the 20 that vanished are deleted.
    *r.source.total_num.lock().unwrap() = None;
    let complete = r.pipeline().sync_all(&Shutdown::new()).await.expect("sync");
    assert_eq!(complete.reports[0].outcome, SyncOutcome::Complete);
    assert_eq!(complete.reports[0].counts.deleted, 20);
    assert_eq!(r.present().await, 100);
}

#[tokio::test]
async fn batches_are_cut_by_batch_size_and_by_what_the_api_takes() {
    let r = rig(25, 4, "[policy]\nbatch_size = 10\n").await;
    r.pipeline().sync_all(&Shutdown::new()).await.expect("sync");
    let report = r
        .pipeline()
        .scan(&Shutdown::new(), &r.fence)
        .await
        .expect("scan");
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(report.submitted(), 25);
    assert_eq!(
        r.submitter.call_sizes(),
        [4, 4, 4, 4, 4, 4, 1],
        "the API's 4 beats batch_size 10"
    );
    let again = r
        .pipeline()
        .scan(&Shutdown::new(), &r.fence)
        .await
        .expect("scan");
    assert!(again.batches.is_empty(), "in flight: nothing is due twice");
}

#[tokio::test]
async fn too_large_splits_refused_goes_on_and_stop_run_stops() {
    let r = rig(40, 100, "[policy]\nbatch_size = 8\n").await;
    r.pipeline().sync_all(&Shutdown::new()).await.expect("sync");
    let failure = |message: &str| BatchFailure {
        message: message.into(),
        ..BatchFailure::default()
    };
    r.submitter
        .answer_next(Err(SubmitError::TooLarge(failure("too large"))));
    r.submitter.answer_next(Ok(()));
    r.submitter.answer_next(Ok(()));
    r.submitter
        .answer_next(Err(SubmitError::Refused(failure("refused"))));
    r.submitter
        .answer_next(Err(SubmitError::OutcomeUnknown(failure("timeout"))));
    r.submitter
        .answer_next(Err(SubmitError::StopRun(failure("throttled"))));
    let report = r
        .pipeline()
        .scan(&Shutdown::new(), &r.fence)
        .await
        .expect("scan");
    let states: Vec<BatchState> = report.batches.iter().map(|b| b.state).collect();
    assert_eq!(
        states,
        [
            BatchState::Split,
            BatchState::Sent,
            BatchState::Sent,
            BatchState::Failed,
            BatchState::Unknown,
            BatchState::Failed
        ]
    );
    assert_eq!(r.submitter.call_sizes(), [8, 4, 4, 8, 8, 8]);
    assert!(
        report
            .stopped
            .as_deref()
            .unwrap_or("")
            .contains("throttled"),
        "{report:?}"
    );
    let batches = r.store.recent_batches(10).await.expect("batches");
    let statuses: Vec<&str> = batches.iter().rev().map(|b| b.status.as_str()).collect();
    assert_eq!(
        statuses,
        ["failed", "sent", "sent", "failed", "pending", "failed"]
    );

    // The refused and stopped images are due again; the unanswered ones are not.
    r.clock.advance(Duration::from_secs(1));
    let plan = r.pipeline().plan().await.expect("plan");
    assert_eq!(
        plan.due.len(),
        40 - 8 - 8,
        "40 less the sent and the unknown"
    );
}

#[tokio::test]
async fn a_requested_shutdown_stops_between_batches() {
    let r = rig(30, 100, "[policy]\nbatch_size = 10\n").await;
    r.pipeline().sync_all(&Shutdown::new()).await.expect("sync");
    let shutdown = Shutdown::new();
    shutdown.request();
    let report = r.pipeline().scan(&shutdown, &r.fence).await.expect("scan");
    assert!(report.batches.is_empty());
    assert_eq!(
        report.stopped.as_deref(),
        Some("hss-scand is shutting down")
    );
    let synced = r.pipeline().sync_all(&shutdown).await.expect("sync");
    assert_eq!(synced.stopped_before, ["t"]);
}

#[tokio::test]
async fn a_replica_that_lost_the_lease_submits_nothing() {
    let r = rig(10, 100, "").await;
    r.pipeline().sync_all(&Shutdown::new()).await.expect("sync");
    // Paused past its lease; another replica took over meanwhile.
    r.clock.advance(Duration::from_secs(2 * 86_400));
    let LeaseAttempt::Held(other) = r
        .store
        .acquire_lease("other", Duration::from_secs(60))
        .await
        .expect("lease")
    else {
        panic!("an expired lease is taken");
    };
    let report = r
        .pipeline()
        .scan(&Shutdown::new(), &r.fence)
        .await
        .expect("scan");
    assert!(r.submitter.call_sizes().is_empty(), "nothing sent");
    assert!(report.batches.is_empty(), "{report:?}");
    let why = report.stopped.expect("it says why it stopped");
    assert!(
        why.contains("lost the leader lease") && why.contains("other"),
        "{why}"
    );
    // The new holder submits them.
    let report = r
        .pipeline()
        .scan(&Shutdown::new(), &other)
        .await
        .expect("scan");
    assert_eq!(report.submitted(), 10);
}

#[tokio::test]
async fn a_batch_recorded_before_a_pause_past_the_lease_is_not_sent_and_its_images_go_back() {
    let r = rig(10, 100, "").await;
    r.pipeline().sync_all(&Shutdown::new()).await.expect("sync");
    // Recorded under the lease, then paused two days before the call went out.
    *r.submitter.pause_before_send.lock().unwrap() =
        Some((r.clock.clone(), Duration::from_secs(2 * 86_400)));
    let report = r
        .pipeline()
        .scan(&Shutdown::new(), &r.fence)
        .await
        .expect("scan");
    assert!(r.submitter.call_sizes().is_empty(), "nothing went out");
    assert_eq!(report.batches.len(), 1, "{report:?}");
    assert_eq!(report.batches[0].state, BatchState::Failed);
    let why = report.stopped.expect("it says why it stopped");
    assert!(why.contains("expired"), "{why}");
    // The batch is recorded as failed, so its images are due again for the next leader.
    let LeaseAttempt::Held(next) = r
        .store
        .acquire_lease("next", Duration::from_secs(60))
        .await
        .expect("lease")
    else {
        panic!("an expired lease is taken");
    };
    let report = r
        .pipeline()
        .scan(&Shutdown::new(), &next)
        .await
        .expect("scan");
    assert_eq!(report.submitted(), 10);
    assert_eq!(r.submitter.call_sizes(), [10]);
}
