//! One image as the list calls send it, derived from its index and record, with the wire
//! quirks the configuration asks for: `PrivateImageRepositoryInfo` for the deprecated
//! `list_swr_image_repository`, `RegistryImagesInfo` for the current `list_registry_images`.

use serde::Serialize;

use super::dataset::{Dataset, ID_BASE, Status};
use super::kind::Kind;
use super::names::{self, Naming, hash, mix};

/// An int64 field, sent as a number, a numeric string, or the seed page's junk text.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Num {
    Int(i64),
    Text(String),
}

/// A multi-arch sibling of an image listed by the deprecated call.
#[derive(Debug, Clone, Serialize)]
pub struct AssociatedImage {
    pub image_name: String,
    pub image_version: String,
    pub image_type: &'static str,
    pub namespace: String,
    pub image_digest: String,
    pub scan_status: &'static str,
}

/// Every field of `PrivateImageRepositoryInfo` (spec 2.2), in its order.
#[derive(Debug, Clone, Serialize)]
pub struct ImageView {
    pub id: Num,
    pub namespace: String,
    pub image_name: String,
    pub image_id: String,
    pub image_digest: String,
    pub image_version: String,
    pub image_type: &'static str,
    pub latest_version: bool,
    pub scan_status: &'static str,
    pub scan_failed_desc: &'static str,
    pub image_size: Num,
    pub latest_update_time: Num,
    pub latest_scan_time: Num,
    pub vul_num: u32,
    pub unsafe_setting_num: u32,
    pub malicious_file_num: u32,
    pub domain_name: String,
    pub shared_status: &'static str,
    pub scannable: bool,
    pub instance_name: String,
    pub instance_id: String,
    pub instance_url: String,
    pub association_images: Vec<AssociatedImage>,
}

/// A multi-arch sibling as the current call lists it (`AssociateImagesInfo`).
#[derive(Debug, Clone, Serialize)]
pub struct AssociateImagesInfo {
    pub id: i64,
    pub image_id: String,
    pub image_name: String,
    pub image_version: String,
    pub image_type: &'static str,
    pub namespace: String,
    pub image_digest: String,
    pub scan_status: &'static str,
    pub vul_num: u32,
    pub unsafe_setting_num: u32,
    pub malicious_file_num: u32,
}

/// Every field of `RegistryImagesInfo` (`list_registry_images`), in its order.
#[derive(Debug, Clone, Serialize)]
pub struct RegistryImageView<'a> {
    pub id: Num,
    pub namespace: String,
    pub image_name: String,
    pub image_id: String,
    pub image_digest: String,
    pub image_version: String,
    pub image_type: &'static str,
    /// Borrowed from the registry: a page is serialised while the account is read-locked.
    pub registry_id: &'a str,
    pub registry_name: &'a str,
    pub registry_type: &'static str,
    pub latest_version: bool,
    pub scan_status: &'static str,
    pub scan_failed_desc: &'static str,
    pub scan_failed_code: &'static str,
    pub image_size: Num,
    pub latest_update_time: Num,
    pub latest_scan_time: Num,
    pub latest_sync_time: Num,
    pub vul_num: u32,
    pub unsafe_setting_num: u32,
    pub malicious_file_num: u32,
    pub domain_name: String,
    pub shared_status: &'static str,
    pub scannable: bool,
    pub is_multiple_arch: bool,
    pub instance_name: String,
    pub instance_id: String,
    pub instance_url: String,
    pub severity_level: &'static str,
    pub association_images: Vec<AssociateImagesInfo>,
}

/// The status HSS reports for images whose status this project does not know.
pub const UNKNOWN_STATUS: &str = "quarantined";

const FAILED_DESCS: [&str; 5] = [
    "unknown_error",
    "failed_to_scan_vulnerability",
    "failed_to_scan_file",
    "response_timed_out",
    "authentication_failed",
];

/// Multi-arch siblings' record ids live far above every listed record's.
const SIBLING_ID_BASE: i64 = ID_BASE + (1 << 40);

/// What both views share about one image at one moment.
struct Common {
    status: Status,
    reported: &'static str,
    latest_scan_ms: i64,
    failed_code: &'static str,
    vul: u32,
    unsafe_settings: u32,
    malicious: u32,
    severity: &'static str,
    image_size: i64,
    domain_name: String,
    shared_status: &'static str,
    instance: (String, String, String),
    junk: bool,
}

impl Dataset {
    /// The record id of image `index`.
    pub fn record_id(index: usize) -> i64 {
        ID_BASE + index as i64
    }

    /// `image_size`: oversized images are over 12 GB, the rest a few MB to 2 GB.
    pub fn image_size(&self, index: usize, status: Status) -> i64 {
        let size_mb = if status == Status::ImageOversized {
            12_000
        } else {
            5
        };
        size_mb * 1_048_576
            + (hash(self.naming.seed, index as u64, names::SALT_SIZE) % 2_000_000_000) as i64
    }

    /// `image_digest`: changes with every re-push.
    pub fn digest(&self, index: usize) -> String {
        let generation = u64::from(self.record(index).generation);
        sha256_text(
            self.naming.seed,
            index as u64,
            names::SALT_DIGEST ^ (generation << 48),
            "sha256:",
        )
    }

    fn image_id(&self, index: usize) -> String {
        let generation = u64::from(self.record(index).generation);
        sha256_text(
            self.naming.seed,
            index as u64,
            names::SALT_IMAGE_ID ^ (generation << 48),
            "",
        )
    }

    fn common(&self, index: usize, now_ms: i64) -> Common {
        let record = self.record(index);
        let kind = self.kind(index);
        let (status, latest_scan_ms) = self.state(index, now_ms);
        let reported = self.reported_status(index, now_ms);
        let failed_code = match status {
            // A failure of our own submission has one cause; the initial account has several.
            Status::Failed if record.attempts > 0 => "failed_to_scan_vulnerability",
            Status::Failed => {
                let h = hash(self.naming.seed, index as u64, names::SALT_FINDINGS);
                FAILED_DESCS[(h % FAILED_DESCS.len() as u64) as usize]
            }
            Status::DownloadFailed => "download_failed",
            Status::ImageOversized => "image_oversized",
            _ => "",
        };
        let success = status == Status::Success;
        let findings = self.findings(index);
        let (domain_name, shared_status) = if kind == Kind::Shared {
            let partner = hash(self.naming.seed, index as u64, names::SALT_EXPIRED) >> 40;
            let status = if self.is_expired(index) {
                "expired"
            } else {
                "effective"
            };
            (format!("partner-domain-{:02}", partner % 8), status)
        } else {
            (String::new(), "")
        };
        let instance = if kind == Kind::Instance {
            let n = Naming::instance_of(index);
            (
                Naming::instance_name(n),
                self.naming.instance_id(n),
                Naming::instance_url(n),
            )
        } else {
            (String::new(), String::new(), String::new())
        };
        Common {
            status,
            reported: reported.map_or(UNKNOWN_STATUS, Status::as_str),
            latest_scan_ms,
            failed_code,
            vul: if success { findings.vul } else { 0 },
            unsafe_settings: if success { findings.unsafe_settings } else { 0 },
            malicious: if success { findings.malicious } else { 0 },
            severity: if success {
                findings.severity().as_str()
            } else {
                ""
            },
            image_size: self.image_size(index, status),
            domain_name,
            shared_status,
            instance,
            junk: every(self.wire.junk_number_every, index),
        }
    }

    /// The deprecated call's view of image `index` at `now_ms`.
    pub fn view(&self, index: usize, now_ms: i64) -> ImageView {
        let seed = self.naming.seed;
        let i = index as u64;
        let c = self.common(index, now_ms);
        let image_type = self.kind(index).wire();
        let namespace = self.naming.namespace(index);
        let image_name = self.naming.image_name(index);
        let image_version = Naming::image_version(index);
        let association_images = if self.is_multi_arch(index) {
            vec![AssociatedImage {
                image_name: image_name.clone(),
                image_version: format!("{image_version}-arm64"),
                image_type,
                namespace: namespace.clone(),
                image_digest: sha256_text(seed, i, names::SALT_ARCH, "sha256:"),
                scan_status: c.status.as_str(),
            }]
        } else {
            Vec::new()
        };
        let (instance_name, instance_id, instance_url) = c.instance;
        ImageView {
            id: self.id_num(index, c.junk),
            namespace,
            image_name,
            image_id: self.image_id(index),
            image_digest: self.digest(index),
            image_version,
            image_type,
            latest_version: Naming::is_latest(index),
            scan_status: c.reported,
            scan_failed_desc: c.failed_code,
            image_size: self.size_num(c.image_size, c.junk),
            latest_update_time: self.num(self.update_ms(index)),
            latest_scan_time: self.num(c.latest_scan_ms),
            vul_num: c.vul,
            unsafe_setting_num: c.unsafe_settings,
            malicious_file_num: c.malicious,
            domain_name: c.domain_name,
            shared_status: c.shared_status,
            scannable: self.is_scannable(index),
            instance_name,
            instance_id,
            instance_url,
            association_images,
        }
    }

    /// The current call's view (`RegistryImagesInfo`) of image `index` at `now_ms`.
    pub fn registry_view(&self, index: usize, now_ms: i64) -> RegistryImageView<'_> {
        let seed = self.naming.seed;
        let i = index as u64;
        let c = self.common(index, now_ms);
        let kind = self.kind(index);
        let registry = self.registry_of(index);
        let namespace = self.naming.namespace(index);
        let image_name = self.naming.image_name(index);
        let image_version = Naming::image_version(index);
        let association_images = if self.is_multi_arch(index) {
            ["amd64", "arm64"]
                .into_iter()
                .enumerate()
                .map(|(n, arch)| {
                    let salt = names::SALT_ARCH ^ ((n as u64 + 1) << 56);
                    AssociateImagesInfo {
                        id: SIBLING_ID_BASE + i as i64 * 2 + n as i64,
                        image_id: sha256_text(seed, i, salt ^ 1, ""),
                        image_name: image_name.clone(),
                        image_version: format!("{image_version}-{arch}"),
                        image_type: kind.wire(),
                        namespace: namespace.clone(),
                        image_digest: sha256_text(seed, i, salt, "sha256:"),
                        scan_status: Status::Unscan.as_str(),
                        vul_num: 0,
                        unsafe_setting_num: 0,
                        malicious_file_num: 0,
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        let (instance_name, instance_id, instance_url) = c.instance;
        RegistryImageView {
            id: self.id_num(index, c.junk),
            namespace,
            image_name,
            image_id: self.image_id(index),
            image_digest: self.digest(index),
            image_version,
            image_type: kind.wire(),
            registry_id: &registry.id,
            registry_name: &registry.name,
            registry_type: kind.registry_type(),
            latest_version: Naming::is_latest(index),
            scan_status: c.reported,
            scan_failed_desc: c.failed_code,
            scan_failed_code: c.failed_code,
            image_size: self.size_num(c.image_size, c.junk),
            latest_update_time: self.num(self.update_ms(index)),
            latest_scan_time: self.num(c.latest_scan_ms),
            latest_sync_time: self.num(self.sync_ms(index)),
            vul_num: c.vul,
            unsafe_setting_num: c.unsafe_settings,
            malicious_file_num: c.malicious,
            domain_name: c.domain_name,
            shared_status: c.shared_status,
            scannable: self.is_scannable(index),
            is_multiple_arch: self.is_multi_arch(index),
            instance_name,
            instance_id,
            instance_url,
            severity_level: c.severity,
            association_images,
        }
    }

    fn id_num(&self, index: usize, junk: bool) -> Num {
        if junk {
            Num::Text("111 (example)".into())
        } else {
            self.num(Self::record_id(index))
        }
    }

    fn size_num(&self, size: i64, junk: bool) -> Num {
        if junk {
            Num::Text("1000 (Bytes)".into())
        } else {
            self.num(size)
        }
    }

    fn num(&self, value: i64) -> Num {
        if self.wire.numbers_as_strings {
            Num::Text(value.to_string())
        } else {
            Num::Int(value)
        }
    }
}

/// Whether image `index` is one of every `n`th (0 = none).
fn every(n: usize, index: usize) -> bool {
    n > 0 && (index + 1).is_multiple_of(n)
}

/// 64 hex digits that look like a SHA-256, derived from the index.
fn sha256_text(seed: u64, i: u64, salt: u64, prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    let mut h = hash(seed, i, salt);
    for chunk in bytes.chunks_exact_mut(8) {
        chunk.copy_from_slice(&h.to_be_bytes());
        h = mix(h);
    }
    let mut digits = [0u8; 64];
    let mut out = String::with_capacity(prefix.len() + 64);
    out.push_str(prefix);
    if hex::encode_to_slice(bytes, &mut digits).is_ok() {
        out.push_str(std::str::from_utf8(&digits).unwrap_or_default());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::Lifecycle;
    use crate::sim::dataset::WireStyle;

    const NOW: i64 = 1_700_000_000_000;

    #[test]
    fn every_documented_field_is_present() {
        let ds = Dataset::new(10, 1, &Lifecycle::default(), WireStyle::default(), NOW);
        let json = serde_json::to_value(ds.view(3, NOW)).unwrap();
        for field in [
            "id",
            "namespace",
            "image_name",
            "image_id",
            "image_digest",
            "image_version",
            "image_type",
            "latest_version",
            "scan_status",
            "scan_failed_desc",
            "image_size",
            "latest_update_time",
            "latest_scan_time",
            "vul_num",
            "unsafe_setting_num",
            "malicious_file_num",
            "domain_name",
            "shared_status",
            "scannable",
            "instance_name",
            "instance_id",
            "instance_url",
            "association_images",
        ] {
            assert!(json.get(field).is_some(), "{field} missing from {json}");
        }
        assert!(json["id"].is_i64() && json["image_digest"].as_str().unwrap().len() == 71);
    }

    #[test]
    fn the_registry_view_has_every_registry_images_info_field() {
        let ds = Dataset::new(200, 1, &Lifecycle::default(), WireStyle::default(), NOW);
        let json = serde_json::to_value(ds.registry_view(3, NOW)).unwrap();
        for field in [
            "id",
            "namespace",
            "image_name",
            "image_id",
            "image_digest",
            "image_version",
            "image_type",
            "registry_id",
            "registry_name",
            "registry_type",
            "latest_version",
            "scan_status",
            "scan_failed_desc",
            "scan_failed_code",
            "image_size",
            "latest_update_time",
            "latest_scan_time",
            "latest_sync_time",
            "vul_num",
            "unsafe_setting_num",
            "malicious_file_num",
            "domain_name",
            "shared_status",
            "scannable",
            "is_multiple_arch",
            "instance_name",
            "instance_id",
            "instance_url",
            "severity_level",
            "association_images",
        ] {
            assert!(json.get(field).is_some(), "{field} missing from {json}");
        }
        assert_eq!(json["id"], ID_BASE + 3);
        let multi = (0..200).find(|&i| ds.is_multi_arch(i)).expect("2% of 200");
        let view = serde_json::to_value(ds.registry_view(multi, NOW)).unwrap();
        assert_eq!(view["is_multiple_arch"], true);
        let siblings = view["association_images"].as_array().unwrap();
        assert_eq!(siblings.len(), 2);
        assert!(
            siblings
                .iter()
                .all(|s| s["id"].as_i64() != view["id"].as_i64())
        );
    }

    #[test]
    fn wire_quirks_apply_to_the_configured_images() {
        let wire = WireStyle {
            numbers_as_strings: true,
            junk_number_every: 4,
            unknown_status_every: 5,
        };
        let ds = Dataset::new(10, 1, &Lifecycle::default(), wire, NOW);
        let plain = serde_json::to_value(ds.view(0, NOW)).unwrap();
        assert!(
            plain["id"].as_str().unwrap().parse::<i64>().is_ok(),
            "{plain}"
        );
        assert!(plain["latest_update_time"].is_string());
        let junk = serde_json::to_value(ds.view(3, NOW)).unwrap();
        assert_eq!(junk["image_size"], "1000 (Bytes)");
        assert_eq!(junk["id"], "111 (example)");
        assert_eq!(
            serde_json::to_value(ds.view(4, NOW)).unwrap()["scan_status"],
            UNKNOWN_STATUS
        );
    }

    #[test]
    fn ids_are_unique() {
        let ds = Dataset::new(50_000, 9, &Lifecycle::default(), WireStyle::default(), NOW);
        let mut ids: Vec<i64> = (0..50_000)
            .map(|i| match ds.registry_view(i, NOW).id {
                Num::Int(id) => id,
                Num::Text(_) => unreachable!(),
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 50_000);
    }
}
