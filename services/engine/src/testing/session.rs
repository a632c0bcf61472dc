//! Driving a [`Session`] the way a JSON transport does, for tests: connect it, send it
//! commands, and read what it queued as JSON messages.

use bytes::BytesMut;
use herald_protocol::Format;
use serde_json::{Value, json};

use crate::{Flow, Node, Session};

/// Drains until nothing is left queued (a control is applied in a drain of its own) and
/// returns every message, in order. Panics if the session asks to close.
pub async fn drain_all(session: &mut Session) -> Vec<Value> {
    let mut all = Vec::new();
    loop {
        let mut buf = BytesMut::new();
        let flow = session.drain(&mut buf).await;
        assert_eq!(flow, Flow::Continue, "the session closed");
        let text = String::from_utf8(buf.to_vec()).expect("JSON frames are UTF-8");
        let messages: Vec<Value> = text
            .split('\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_str(l).expect("a JSON message"))
            .collect();
        if messages.is_empty() && session.outbound().queued_bytes() == 0 {
            return all;
        }
        all.extend(messages);
    }
}

/// A JSON session of `node`, connected as `user` (its connect reply already drained).
pub async fn connected(node: &Node, user: &str) -> Session {
    let mut session = node.session(Format::Json);
    let connect = json!({"id":1,"connect":{"token":super::node::token(user, None)}});
    let replies = command(&mut session, connect).await;
    assert!(replies[0]["connect"]["client"].is_string(), "{replies:?}");
    session
}

/// Hands one command to the session and returns everything it queued.
pub async fn command(session: &mut Session, command: Value) -> Vec<Value> {
    let flow = session.handle_frame(command.to_string().as_bytes()).await;
    assert_eq!(flow, Flow::Continue, "{command}");
    drain_all(session).await
}
