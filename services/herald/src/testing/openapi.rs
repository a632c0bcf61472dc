//! Checks a server API exchange against docs/openapi.yaml (the JSON the node serves): the
//! response must be one the document lists for the path, verb and status, of a listed content
//! type and schema; a request the node accepted must match the request schema, and one the
//! schema accepts must not be refused as malformed. [`super::Api`] runs it on every `/api`
//! call of the tests, so the document cannot drift from what the node answers.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

/// One request and its response, as seen on the wire.
#[derive(Debug, Clone, Copy)]
pub struct Exchange<'a> {
    pub verb: &'a str,
    /// The request target, query included.
    pub target: &'a str,
    pub request_body: &'a str,
    pub status: u16,
    pub content_type: Option<&'a str>,
    pub response_body: &'a str,
}

/// The OpenAPI document and the schema validators built from it so far.
pub struct Spec {
    doc: Value,
    validators: Mutex<HashMap<String, std::sync::Arc<jsonschema::Validator>>>,
}

impl Spec {
    /// The document the node serves.
    pub fn served() -> &'static Spec {
        static SPEC: OnceLock<Spec> = OnceLock::new();
        SPEC.get_or_init(|| {
            Spec::new(serde_json::from_str(crate::api::openapi::SPEC_JSON).expect("spec JSON"))
        })
    }

    pub fn new(doc: Value) -> Spec {
        Spec {
            doc,
            validators: Mutex::default(),
        }
    }

    /// Whether `exchange` is what the document describes; the error says where it differs.
    pub fn check(&self, exchange: &Exchange) -> Result<(), String> {
        let path = exchange.target.split('?').next().unwrap_or_default();
        let verb = exchange.verb.to_ascii_lowercase();
        let Some((path_key, operation)) = self.operation(path, &verb) else {
            // Verbs an endpoint does not take: 405, as the document's description says.
            if exchange.status == 405 {
                return Ok(());
            }
            return Err(format!("{verb} {path} is not in the document"));
        };
        let base = format!("/paths/{}/{verb}", escape(&path_key));
        let legacy = path_key == "/api";
        let response_json = self.check_response(&base, operation, exchange, legacy)?;
        self.check_request(&base, operation, exchange, legacy, response_json.as_ref())
    }

    fn operation(&self, path: &str, verb: &str) -> Option<(String, &Value)> {
        let paths = self.doc["paths"].as_object()?;
        let key = if paths.contains_key(path) {
            path.to_string()
        } else if path.starts_with("/api/") && !path[5..].contains('/') {
            "/api/{method}".to_string()
        } else {
            return None;
        };
        let operation = paths.get(&key)?.get(verb)?;
        Some((key, operation))
    }

    /// Returns the parsed JSON lines of the response, if it is JSON.
    fn check_response(
        &self,
        base: &str,
        operation: &Value,
        ex: &Exchange,
        legacy: bool,
    ) -> Result<Option<Vec<Value>>, String> {
        let status = ex.status.to_string();
        let (mut pointer, mut response) = match operation["responses"].get(&status) {
            Some(r) => (format!("{base}/responses/{status}"), r),
            None => {
                return Err(format!(
                    "status {status} is not documented for {base}: {}",
                    ex.response_body
                ));
            }
        };
        if let Some(target) = response.get("$ref").and_then(Value::as_str) {
            pointer = target.trim_start_matches('#').to_string();
            response = self.doc.pointer(&pointer).ok_or("dangling $ref")?;
        }
        let Some(content) = response.get("content").and_then(Value::as_object) else {
            return if ex.response_body.is_empty() {
                Ok(None)
            } else {
                Err(format!("{pointer} has no body, got {:?}", ex.response_body))
            };
        };
        let media = ex
            .content_type
            .map(|c| {
                c.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase()
            })
            .ok_or_else(|| format!("{pointer}: a response without Content-Type"))?;
        if !content.contains_key(&media) {
            return Err(format!(
                "{pointer}: content type {media} is not documented ({:?})",
                content.keys().collect::<Vec<_>>()
            ));
        }
        if media != "application/json" {
            return Ok(None);
        }
        let schema = format!("{pointer}/content/application~1json/schema");
        let values = json_documents(ex.response_body, legacy)
            .map_err(|e| format!("{pointer}: response is not JSON: {e}: {}", ex.response_body))?;
        for value in &values {
            self.validate(&schema, value)
                .map_err(|e| format!("response to {} {}: {e}", ex.verb, ex.target))?;
        }
        Ok(Some(values))
    }

    fn check_request(
        &self,
        base: &str,
        operation: &Value,
        ex: &Exchange,
        legacy: bool,
        response: Option<&Vec<Value>>,
    ) -> Result<(), String> {
        let Some(body) = operation.get("requestBody") else {
            return Ok(());
        };
        if body.pointer("/content/application~1json/schema").is_none() {
            return Ok(());
        }
        let schema = format!("{base}/requestBody/content/application~1json/schema");
        let required = body["required"].as_bool().unwrap_or(false);
        let valid = if ex.request_body.trim().is_empty() {
            if required {
                Err("no body".to_string())
            } else {
                Ok(())
            }
        } else {
            match json_documents(ex.request_body, legacy) {
                Ok(values) => values.iter().try_for_each(|v| self.validate(&schema, v)),
                Err(e) => Err(format!("not JSON: {e}")),
            }
        };
        let accepted = ex.status == 200
            && response.is_some_and(|values| !values.iter().any(refused_as_bad_request));
        let malformed =
            ex.status == 400 && ex.content_type.is_some_and(|c| c.starts_with("text/plain"));
        match valid {
            Err(e) if accepted => Err(format!(
                "the node accepted {} {} but the document refuses the request: {e}",
                ex.verb, ex.target
            )),
            Ok(()) if malformed => Err(format!(
                "the document accepts {} {} {} but the node refused it as malformed",
                ex.verb, ex.target, ex.request_body
            )),
            _ => Ok(()),
        }
    }

    /// Validates `value` against the schema at JSON pointer `pointer` of the document, its
    /// `$ref`s resolved within the document.
    pub fn validate(&self, pointer: &str, value: &Value) -> Result<(), String> {
        let validator = {
            let mut validators = self.validators.lock().unwrap_or_else(|e| e.into_inner());
            match validators.get(pointer) {
                Some(v) => v.clone(),
                None => {
                    if self.doc.pointer(pointer).is_none() {
                        return Err(format!("no schema at {pointer}"));
                    }
                    // The document itself is the root schema, pointed at the wanted one, so
                    // `#/components/...` references resolve.
                    let mut root = self.doc.clone();
                    root["$schema"] = "https://json-schema.org/draft/2020-12/schema".into();
                    root["$ref"] = format!("#{pointer}").into();
                    let validator = jsonschema::draft202012::new(&root)
                        .map_err(|e| format!("schema at {pointer}: {e}"))?;
                    let validator = std::sync::Arc::new(validator);
                    validators.insert(pointer.to_string(), validator.clone());
                    validator
                }
            }
        };
        let errors: Vec<String> = validator
            .iter_errors(value)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{value} does not match {pointer}: {}",
                errors.join("; ")
            ))
        }
    }
}

/// A reply that says the request was bad (code 107), anywhere a reply can carry one.
fn refused_as_bad_request(value: &Value) -> bool {
    let is_107 = |v: &Value| v.pointer("/error/code") == Some(&Value::from(107));
    is_107(value)
        || ["/replies", "/result/responses"].iter().any(|p| {
            value
                .pointer(p)
                .and_then(Value::as_array)
                .is_some_and(|items| items.iter().any(is_107))
        })
}

/// The JSON documents of a body: one, or one a line for the legacy endpoint.
fn json_documents(body: &str, lines: bool) -> Result<Vec<Value>, serde_json::Error> {
    if lines {
        body.lines()
            .filter(|l| !l.trim().is_empty())
            .map(serde_json::from_str)
            .collect()
    } else {
        serde_json::from_str(body).map(|v| vec![v])
    }
}

/// A path as a JSON pointer token.
fn escape(path: &str) -> String {
    path.replace('~', "~0").replace('/', "~1")
}
