//! YAML to JSON for docs/openapi.yaml, shared by build.rs (which writes the JSON the node
//! serves) and tests/openapi.rs (which checks the served document against the YAML).

use yaml_rust2::{Yaml, YamlLoader};

/// The one document of `source` as JSON; an error names what cannot be JSON.
pub fn convert(source: &str) -> Result<serde_json::Value, String> {
    let docs = YamlLoader::load_from_str(source).map_err(|e| e.to_string())?;
    match docs.as_slice() {
        [doc] => to_json(doc),
        other => Err(format!("expected one YAML document, found {}", other.len())),
    }
}

fn to_json(yaml: &Yaml) -> Result<serde_json::Value, String> {
    use serde_json::Value;
    Ok(match yaml {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Integer(i) => Value::from(*i),
        // Integers beyond i64 (a u64 bound) arrive as reals: keep them exact.
        Yaml::Real(text) => match text.parse::<u64>() {
            Ok(u) => Value::from(u),
            Err(_) => text
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| format!("not a JSON number: {text}"))?,
        },
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Array(items) => Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        Yaml::Hash(map) => {
            let mut object = serde_json::Map::new();
            for (key, value) in map {
                let key = match key {
                    Yaml::String(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    other => return Err(format!("a mapping key JSON cannot hold: {other:?}")),
                };
                object.insert(key, to_json(value)?);
            }
            Value::Object(object)
        }
        Yaml::Alias(_) | Yaml::BadValue => return Err(format!("unsupported YAML: {yaml:?}")),
    })
}
