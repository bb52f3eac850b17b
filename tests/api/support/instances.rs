//! Several instances of the app on one throwaway PostgreSQL database, each
//! with a simulator of its own, as a deployment behind a load balancer
//! would run them.

use super::{test_settings, Db};
use bedrock_chat::{
    bedrock::{simulator, BedrockChat},
    chat::generation::Generations,
    server::Application,
};
use std::net::SocketAddr;

/// One running instance.
pub struct Instance {
    pub base: String,
    pub sim: simulator::SimulatorHandle,
    pub generations: Generations,
    /// Dropping it starts the instance's shutdown (as SIGTERM would).
    pub stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Instance {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// Starts an instance on `db` (which other instances may share).
pub async fn start_instance(db: &Db, overrides: &[(&str, &str)]) -> Result<Instance, std::io::Error> {
    let settings = test_settings(db, overrides);
    let sim = simulator::spawn(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("simulator starts");
    let bedrock = BedrockChat::for_simulator(sim.clone(), settings.bedrock.max_attempts);
    let app = Application::build_with(settings, bedrock).await?;
    let base = format!("http://{}", app.local_addr());
    let generations = app.generations().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    Ok(Instance {
        base,
        sim,
        generations,
        stop: Some(stop),
    })
}

/// `n` instances on one fresh PostgreSQL database; `None` (the test is
/// skipped) without a test PostgreSQL outside CI.
pub async fn start_instances(n: usize, overrides: &[(&str, &str)]) -> Option<(Db, Vec<Instance>)> {
    let db = Db::postgres().await?;
    let mut instances = Vec::with_capacity(n);
    for _ in 0..n {
        instances.push(start_instance(&db, overrides).await.expect("instance starts"));
    }
    Some((db, instances))
}

/// A plain round-robin TCP load balancer on loopback: each new connection
/// goes to the next backend. No stickiness of any kind.
pub async fn round_robin(backends: &[String]) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let backends: Vec<String> = backends
        .iter()
        .map(|base| base.trim_start_matches("http://").to_owned())
        .collect();
    tokio::spawn(async move {
        let mut next = 0;
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            let backend = backends[next % backends.len()].clone();
            next += 1;
            tokio::spawn(async move {
                if let Ok(mut server) = tokio::net::TcpStream::connect(&backend).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
    format!("http://{address}")
}

/// A browser behind a load balancer that opens a new connection per
/// request (so round robin moves it between instances every time).
pub fn user_without_connection_reuse() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(super::LIMIT)
        .cookie_store(true)
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}
