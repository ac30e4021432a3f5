//! The image kinds the simulated account holds, by their wire names. The simulator keeps its
//! own enum instead of the daemon's so that the two can disagree: a test of the daemon's
//! parsing is only worth something if the server side was not written from the same type.

use std::fmt;

/// One image type of the listing APIs, with the registry type it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `private_image`: SWR private images.
    Private,
    /// `shared_image`: images other SWR accounts share with this one.
    Shared,
    /// `instance_image`: SWR enterprise (instance) images.
    Instance,
    /// `harbor`: images of a connected Harbor registry.
    Harbor,
    /// `jfrog`: images of a connected JFrog registry.
    Jfrog,
}

impl Kind {
    /// Every kind, in the order records store them (`Kind::ALL[k as usize]`).
    pub const ALL: [Kind; 5] = [
        Kind::Private,
        Kind::Shared,
        Kind::Instance,
        Kind::Harbor,
        Kind::Jfrog,
    ];
    /// The kinds the deprecated SWR-only calls know.
    pub const SWR: [Kind; 3] = [Kind::Private, Kind::Shared, Kind::Instance];

    /// The `image_type` wire name.
    pub fn wire(self) -> &'static str {
        match self {
            Kind::Private => "private_image",
            Kind::Shared => "shared_image",
            Kind::Instance => "instance_image",
            Kind::Harbor => "harbor",
            Kind::Jfrog => "jfrog",
        }
    }

    /// The `registry_type` of the registry such images live in.
    pub fn registry_type(self) -> &'static str {
        match self {
            Kind::Private => "SwrPrivate",
            Kind::Shared => "SwrShared",
            Kind::Instance => "SwrEnterprise",
            Kind::Harbor => "Harbor",
            Kind::Jfrog => "Jfrog",
        }
    }

    pub fn parse(wire: &str) -> Option<Kind> {
        Self::ALL.into_iter().find(|k| k.wire() == wire)
    }

    pub fn from_registry_type(registry_type: &str) -> Option<Kind> {
        Self::ALL
            .into_iter()
            .find(|k| k.registry_type() == registry_type)
    }

    /// The kind stored as `code` in a record.
    pub fn from_code(code: u8) -> Kind {
        Self::ALL
            .get(usize::from(code))
            .copied()
            .unwrap_or(Kind::Private)
    }

    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn is_third_party(self) -> bool {
        matches!(self, Kind::Harbor | Kind::Jfrog)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.wire())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        for kind in Kind::ALL {
            assert_eq!(Kind::parse(kind.wire()), Some(kind));
            assert_eq!(Kind::from_registry_type(kind.registry_type()), Some(kind));
            assert_eq!(Kind::from_code(kind.code()), kind);
        }
        assert_eq!(Kind::parse("local_image"), None);
        assert_eq!(Kind::from_code(200), Kind::Private);
    }
}
