//! A TCP front door (what a load balancer is to clients): forwards each new connection to the
//! next of its targets in turn, which the test can move. No stickiness: two requests of one
//! client on two connections may land on two nodes.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::task::JoinHandle;

pub struct FrontDoor {
    pub addr: SocketAddr,
    targets: Arc<Mutex<Vec<SocketAddr>>>,
    /// Connections forwarded so far.
    connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl FrontDoor {
    /// A door to one target.
    pub async fn open(target: SocketAddr) -> FrontDoor {
        Self::round_robin(&[target]).await
    }

    /// A door that sends each new connection to the next of `targets`.
    pub async fn round_robin(targets: &[SocketAddr]) -> FrontDoor {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let targets = Arc::new(Mutex::new(targets.to_vec()));
        let current = targets.clone();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        let task = tokio::spawn(async move {
            let mut turn = 0;
            while let Ok((mut client, _)) = listener.accept().await {
                let to = {
                    let targets = current.lock().expect("targets");
                    targets[turn % targets.len()]
                };
                turn += 1;
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    // A dead target refuses: the client sees its connection close and retries.
                    if let Ok(mut server) = tokio::net::TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        FrontDoor {
            addr,
            targets,
            connections,
            task,
        }
    }

    /// From now on, every new connection goes to `to`.
    pub fn point_to(&self, to: SocketAddr) {
        *self.targets.lock().expect("targets") = vec![to];
    }

    /// Connections forwarded so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for FrontDoor {
    fn drop(&mut self) {
        self.task.abort();
    }
}
