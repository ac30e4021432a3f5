//! Configuration text for tests, benchmarks' twins and the binary: one builder instead of TOML
//! assembled by hand in every module. Values are TOML literals (`"97"`, `"\"6h\""`), so a test
//! can also write what validation must refuse.

use std::collections::BTreeMap;
use std::path::Path;

use hss_scand::config::Settings;

/// A `[[targets]]` entry.
#[derive(Debug, Clone)]
struct TargetText {
    name: String,
    project_id: String,
    image_types: Vec<String>,
    extra: Vec<(String, String)>,
}

/// A configuration file's text, built key by key.
#[derive(Debug, Clone, Default)]
pub struct ConfigText {
    sections: BTreeMap<String, Vec<(String, String)>>,
    targets: Vec<TargetText>,
    raw: String,
}

impl ConfigText {
    pub fn new() -> Self {
        ConfigText::default()
    }

    /// `database.url` for an SQLite file at `path`.
    pub fn database(self, path: &Path) -> Self {
        self.set("database.url", &format!("\"sqlite://{}\"", path.display()))
    }

    /// `hss.endpoint`.
    pub fn endpoint(self, url: &str) -> Self {
        self.set("hss.endpoint", &format!("\"{url}\""))
    }

    /// A target in region `ap-southeast-1` with these image types.
    pub fn target(mut self, name: &str, project_id: &str, image_types: &[&str]) -> Self {
        self.targets.push(TargetText {
            name: name.to_owned(),
            project_id: project_id.to_owned(),
            image_types: image_types.iter().map(|t| (*t).to_owned()).collect(),
            extra: Vec::new(),
        });
        self
    }

    /// A key of the last target added (`trigger_swr_sync`, `enterprise_project_id`, …).
    pub fn target_key(mut self, key: &str, value: &str) -> Self {
        self.targets
            .last_mut()
            .expect("a target to set a key of")
            .extra
            .push((key.to_owned(), value.to_owned()));
        self
    }

    /// `section.key = value`, `value` a TOML literal; the last setting of a key wins.
    pub fn set(mut self, key: &str, value: &str) -> Self {
        let (section, key) = key.split_once('.').expect("a key of the form section.key");
        let entries = self.sections.entry(section.to_owned()).or_default();
        entries.retain(|(k, _)| k != key);
        entries.push((key.to_owned(), value.to_owned()));
        self
    }

    /// TOML appended as it is (arrays of tables such as `[[policy.rules]]`).
    pub fn raw(mut self, text: &str) -> Self {
        self.raw.push_str(text);
        self.raw.push('\n');
        self
    }

    pub fn text(&self) -> String {
        let mut out = String::new();
        for (section, entries) in &self.sections {
            out.push_str(&format!("[{section}]\n"));
            for (key, value) in entries {
                out.push_str(&format!("{key} = {value}\n"));
            }
        }
        for t in &self.targets {
            let types: Vec<String> = t.image_types.iter().map(|i| format!("\"{i}\"")).collect();
            out.push_str(&format!(
                "[[targets]]\nname = \"{}\"\nregion = \"ap-southeast-1\"\nproject_id = \"{}\"\n\
                 image_types = [{}]\n",
                t.name,
                t.project_id,
                types.join(", ")
            ));
            for (key, value) in &t.extra {
                out.push_str(&format!("{key} = {value}\n"));
            }
        }
        out.push_str(&self.raw);
        out
    }

    /// The settings this text loads as (environment overrides apply, as for the binary).
    pub fn settings(&self) -> Settings {
        Settings::from_toml_str(&self.text(), "test.toml")
            .unwrap_or_else(|err| panic!("invalid test configuration: {err}\n{}", self.text()))
    }

    /// Writes the text to `path`.
    pub fn write(&self, path: &Path) {
        std::fs::write(path, self.text()).expect("the configuration file can be written");
    }
}
