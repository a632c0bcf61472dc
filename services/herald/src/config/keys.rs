//! Every key the configuration accepts, read from the raw sections' serde definitions: the
//! documentation and `herald genconfig` are checked against this list, so a key added to a
//! section without documentation fails a test instead of going unnoticed.

use std::fmt;

use serde::Deserialize;
use serde::de::value::MapDeserializer;

use super::raw::{
    RawAdmin, RawApi, RawAuth, RawBroker, RawChannels, RawClient, RawNamespace, RawServer,
    RawSocketIo, RawTelemetry,
};

/// Path of the namespace entries, whose keys are listed as `channels.namespaces[].<key>`.
pub const NAMESPACES: &str = "channels.namespaces";

/// One accepted key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// `server`, `auth`, ..., or `channels.namespaces[]` for a namespace's keys.
    pub section: String,
    pub name: &'static str,
}

impl Key {
    /// `section.name`, as problems and the documentation spell it.
    pub fn path(&self) -> String {
        format!("{}.{}", self.section, self.name)
    }

    /// The environment variable that sets it, `HERALD_<SECTION>__<KEY>`; `None` for a
    /// namespace's keys and for `channels.namespaces` itself (lists of tables come from files
    /// only).
    pub fn env(&self) -> Option<String> {
        if self.section.contains('[') || self.path() == NAMESPACES {
            return None;
        }
        Some(format!(
            "{}_{}__{}",
            super::ENV_PREFIX,
            self.section.to_ascii_uppercase(),
            self.name.to_ascii_uppercase()
        ))
    }
}

/// Every accepted key, section by section in documentation order.
pub fn all() -> Vec<Key> {
    let sections: [(&str, &[&'static str]); 10] = [
        ("server", fields::<RawServer>()),
        ("auth", fields::<RawAuth>()),
        ("api", fields::<RawApi>()),
        ("broker", fields::<RawBroker>()),
        ("channels", fields::<RawChannels>()),
        ("channels.namespaces[]", fields::<RawNamespace>()),
        ("client", fields::<RawClient>()),
        ("admin", fields::<RawAdmin>()),
        ("telemetry", fields::<RawTelemetry>()),
        ("socketio", fields::<RawSocketIo>()),
    ];
    sections
        .into_iter()
        .flat_map(|(section, names)| {
            names.iter().map(move |name| Key {
                section: section.to_owned(),
                name,
            })
        })
        .collect()
}

/// The field names of a `deny_unknown_fields` struct: serde hands them to
/// [`serde::de::Error::unknown_field`] when it meets a key it does not know.
fn fields<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    let probe = MapDeserializer::<_, FieldList>::new(std::iter::once(("\u{0}probe", 0u8)));
    match T::deserialize(probe) {
        Err(FieldList(Some(names))) => names,
        _ => panic!(
            "{} does not reject unknown keys",
            std::any::type_name::<T>()
        ),
    }
}

/// A deserialization error that keeps the list of expected fields.
#[derive(Debug)]
struct FieldList(Option<&'static [&'static str]>);

impl fmt::Display for FieldList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("field list probe")
    }
}

impl std::error::Error for FieldList {}

impl serde::de::Error for FieldList {
    fn custom<M: fmt::Display>(_: M) -> Self {
        FieldList(None)
    }

    fn unknown_field(_: &str, expected: &'static [&'static str]) -> Self {
        FieldList(Some(expected))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_from_the_sections() {
        let paths: Vec<String> = all().iter().map(Key::path).collect();
        for known in [
            "server.listen",
            "auth.hmac_secret",
            "api.key",
            "broker.redis_urls",
            "channels.namespaces",
            "channels.namespaces[].name",
            "client.ping_interval",
        ] {
            assert!(paths.iter().any(|p| p == known), "{known}: {paths:?}");
        }
        let listen = all().into_iter().find(|k| k.path() == "server.listen");
        assert_eq!(
            listen.unwrap().env().as_deref(),
            Some("HERALD_SERVER__LISTEN")
        );
        let ns = all()
            .into_iter()
            .find(|k| k.path() == "channels.namespaces[].name");
        assert_eq!(ns.unwrap().env(), None);
    }

    #[test]
    fn every_section_is_listed() {
        let keys = all();
        for section in super::super::raw::SECTIONS {
            assert!(
                keys.iter().any(|k| k.section == *section),
                "section [{section}] is read by config/raw.rs but has no keys in \
                 config/keys.rs `all()`: add its Raw struct there, so the docs checks see it"
            );
        }
    }
}
