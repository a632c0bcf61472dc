//! Generates `herald.client` wire types from `proto/client.proto`.
//!
//! The .proto is parsed with `protox` (pure Rust, no `protoc` needed) and
//! the resulting descriptor drives two things: `prost-build` code generation
//! and per-field serde attributes implementing the Centrifugo JSON mapping
//! (snake_case names, zero values omitted, `bytes` as raw embedded JSON,
//! `null` accepted as the zero value).

use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FileDescriptorSet};
use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let proto_dir = manifest.join("../../proto");
    let client = proto_dir.join("client.proto");
    println!("cargo:rerun-if-changed={}", client.display());
    println!("cargo:rerun-if-changed=build.rs");

    let fds: FileDescriptorSet =
        protox::compile([&client], [&proto_dir]).unwrap_or_else(|e| panic!("protox: {e:?}"));

    let mut config = prost_build::Config::new();
    config.bytes(["."]);
    config.btree_map(["."]);
    config.message_attribute(
        ".",
        "#[derive(serde::Serialize, serde::Deserialize)]\n#[serde(default)]",
    );

    for file in &fds.file {
        let prefix = match file.package.as_deref() {
            Some(p) if !p.is_empty() => format!(".{p}"),
            _ => String::new(),
        };
        for msg in &file.message_type {
            annotate_message(&mut config, &prefix, msg);
        }
    }

    config
        .compile_fds(fds)
        .unwrap_or_else(|e| panic!("prost-build: {e}"));
}

fn annotate_message(config: &mut prost_build::Config, prefix: &str, msg: &DescriptorProto) {
    // Map entry types are not generated as structs.
    if msg
        .options
        .as_ref()
        .and_then(|o| o.map_entry)
        .unwrap_or(false)
    {
        return;
    }
    let name = msg.name();
    let path = format!("{prefix}.{name}");
    for field in &msg.field {
        let field_path = format!("{path}.{}", field.name());
        let repeated = field.label() == Label::Repeated;
        let attr = if repeated {
            // Vec<_> and maps: omit when empty, null decodes as empty.
            "#[serde(skip_serializing_if = \"crate::raw_json::is_default\", \
             deserialize_with = \"crate::raw_json::null_default\")]"
        } else {
            match field.r#type() {
                Type::Bytes => {
                    "#[serde(skip_serializing_if = \"crate::raw_json::is_default\", \
                     with = \"crate::raw_json::raw_bytes\")]"
                }
                // Option<Message>: omit when None; serde maps null to None.
                Type::Message | Type::Group => {
                    "#[serde(skip_serializing_if = \"Option::is_none\")]"
                }
                _ => {
                    "#[serde(skip_serializing_if = \"crate::raw_json::is_default\", \
                     deserialize_with = \"crate::raw_json::null_default\")]"
                }
            }
        };
        config.field_attribute(&field_path, attr);
    }
    for nested in &msg.nested_type {
        annotate_message(config, &path, nested);
    }
}
