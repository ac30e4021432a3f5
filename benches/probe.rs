use hss_scand::config::Settings;
use hss_scand::domain::{Clock, ImageType};
use hss_scand::pipeline::plan::plan;
use hss_scand::store;
use std::time::Instant;
fn main() {
    let cfg = std::env::args().nth(1).unwrap();
    let settings = Settings::load(std::path::Path::new(&cfg)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let t = Instant::now();
        let store = store::open(&settings.database.url, Clock::system())
            .await
            .unwrap();
        println!("open {:.3}s", t.elapsed().as_secs_f64());
        for names in [false, false, true] {
            let t = Instant::now();
            let mut n = 0u64;
            store
                .visit_candidates("bench", names, &mut |_| n += 1)
                .await
                .unwrap();
            println!(
                "visit names={names} {n} in {:.3}s",
                t.elapsed().as_secs_f64()
            );
        }
        for _ in 0..2 {
            let t = Instant::now();
            let p = plan(
                &store,
                &settings.targets,
                &settings.policy,
                Clock::system().now_ms(),
            )
            .await
            .unwrap();
            println!("plan {} in {:.3}s", p.due.len(), t.elapsed().as_secs_f64());
        }
        let t = Instant::now();
        let k = store
            .known_images("bench", &ImageType::Private)
            .await
            .unwrap();
        println!("known {} in {:.3}s", k.len(), t.elapsed().as_secs_f64());
    });
}
