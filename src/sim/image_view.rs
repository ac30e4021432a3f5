//! One image as `list_swr_image_repository` sends it (`PrivateImageRepositoryInfo`), derived
//! from its index and record, with the wire quirks the configuration asks for.

use serde::Serialize;

use crate::domain::ImageType;

use super::dataset::{Dataset, KINDS, Status};
use super::names::{self, Naming, hash, mix};

/// An int64 field, sent as a number, a numeric string, or the seed page's junk text.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Num {
    Int(i64),
    Text(String),
}

/// A multi-arch sibling of a listed image.
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

/// The status HSS reports for images whose status this project does not know.
pub const UNKNOWN_STATUS: &str = "quarantined";

const FAILED_DESCS: [&str; 5] = [
    "unknown_error",
    "failed_to_scan_vulnerability",
    "failed_to_scan_file",
    "response_timed_out",
    "authentication_failed",
];

impl Dataset {
    /// The wire view of image `index` at `now_ms`.
    pub fn view(&self, index: usize, now_ms: i64) -> ImageView {
        let seed = self.naming.seed;
        let i = index as u64;
        let record = self.record(index);
        let image_type = KINDS[usize::from(record.kind)].as_str();
        let (status, latest_scan_ms) = self.state(index, now_ms);
        let reported = self.reported_status(index, now_ms);
        let findings = hash(seed, i, names::SALT_FINDINGS);
        let success = status == Status::Success;
        let scan_failed_desc = match status {
            // A failure of our own submission has one cause; the initial account has several.
            Status::Failed if record.attempts > 0 => "failed_to_scan_vulnerability",
            Status::Failed => FAILED_DESCS[(findings % FAILED_DESCS.len() as u64) as usize],
            Status::DownloadFailed => "download_failed",
            Status::ImageOversized => "image_oversized",
            _ => "",
        };
        let size_mb = if status == Status::ImageOversized {
            12_000
        } else {
            5
        };
        let image_size =
            size_mb * 1_048_576 + (hash(seed, i, names::SALT_SIZE) % 2_000_000_000) as i64;
        let update_ms = self.created_ms + i64::from(record.update_offset_s) * 1000;

        let kind = &KINDS[usize::from(record.kind)];
        let (domain_name, shared_status) = if *kind == ImageType::Shared {
            let partner = findings >> 40;
            let status = if partner.is_multiple_of(20) {
                "expired"
            } else {
                "effective"
            };
            (format!("partner-domain-{:02}", partner % 8), status)
        } else {
            (String::new(), "")
        };
        let (instance_name, instance_id, instance_url) = if *kind == ImageType::Instance {
            let n = Naming::instance_of(index);
            (
                Naming::instance_name(n),
                self.naming.instance_id(n),
                Naming::instance_url(n),
            )
        } else {
            (String::new(), String::new(), String::new())
        };

        let namespace = self.naming.namespace(index);
        let image_name = self.naming.image_name(index);
        let image_version = Naming::image_version(index);
        let association_images = if hash(seed, i, names::SALT_ARCH).is_multiple_of(50) {
            vec![AssociatedImage {
                image_name: image_name.clone(),
                image_version: format!("{image_version}-arm64"),
                image_type,
                namespace: namespace.clone(),
                image_digest: sha256_text(seed, i, names::SALT_ARCH, "sha256:"),
                scan_status: status.as_str(),
            }]
        } else {
            Vec::new()
        };

        let junk = every(self.wire.junk_number_every, index);
        let id = 1_000_000_000 + i64::from(((i as u32) ^ (seed as u32)).wrapping_mul(0x9E37_79B1));
        ImageView {
            id: if junk {
                Num::Text("111 (example)".into())
            } else {
                self.num(id)
            },
            namespace,
            image_name,
            image_id: sha256_text(seed, i, names::SALT_IMAGE_ID, ""),
            image_digest: sha256_text(seed, i, names::SALT_DIGEST, "sha256:"),
            image_version,
            image_type,
            latest_version: Naming::is_latest(index),
            scan_status: reported.map_or(UNKNOWN_STATUS, Status::as_str),
            scan_failed_desc,
            image_size: if junk {
                Num::Text("1000 (Bytes)".into())
            } else {
                self.num(image_size)
            },
            latest_update_time: self.num(update_ms),
            latest_scan_time: self.num(latest_scan_ms),
            vul_num: if success { (findings % 200) as u32 } else { 0 },
            unsafe_setting_num: if success {
                ((findings >> 8) % 6) as u32
            } else {
                0
            },
            malicious_file_num: if success && (findings >> 16).is_multiple_of(100) {
                1
            } else {
                0
            },
            domain_name,
            shared_status,
            scannable: self.is_scannable(index),
            instance_name,
            instance_id,
            instance_url,
            association_images,
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
            .map(|i| match ds.view(i, NOW).id {
                Num::Int(id) => id,
                Num::Text(_) => unreachable!(),
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 50_000);
    }
}
