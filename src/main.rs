//! The bedrock-chat server binary.
//!
//! * `bedrock-chat` serves the app (settings from `Leptos.toml` + env).
//! * `bedrock-chat simulator [--addr 127.0.0.1:4010]` runs only the Bedrock
//!   simulator, for other tools to point `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` at.

use bedrock_chat::{
    bedrock::{simulator, Backend},
    server::Application,
    settings::{LogFormat, Settings},
};
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::{io::IsTerminal, net::SocketAddr};

/// mimalloc rather than glibc's allocator: a relayed event and a stored
/// message are many small, short-lived allocations, often freed on another
/// thread than the one that made them, and glibc's malloc and free took
/// about 8 % of the server's CPU. With mimalloc the page's endpoint
/// spends a fifth less CPU per event under a burst of 3,000 or 9,000
/// answers; its peak memory is about a tenth higher at 1,000 and lower at
/// 9,000 (`./dev bench`, load). Transparent huge pages are left off
/// (`no_thp`): with them a burst of 1,000 peaked at 191 MiB, not 153.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        None => serve().await,
        Some("simulator") => run_simulator(&args[1..]).await,
        Some(other) => Err(format!(
            "unknown command {other:?}; usage: bedrock-chat [simulator [--addr HOST:PORT]]"
        )),
    };
    if let Err(message) = result {
        eprintln!("bedrock-chat: {message}");
        std::process::exit(1);
    }
}

/// Logs go to standard output: text (coloured only in a terminal), or one
/// JSON object per line. RUST_LOG sets the levels. With an OTLP endpoint
/// configured, this crate's spans are also exported as traces (see
/// `telemetry::traces`); the provider is returned to be flushed at exit.
fn init_logging(format: LogFormat) -> Result<Option<SdkTracerProvider>, String> {
    use tracing_subscriber::{layer::SubscriberExt, util::SubscriberInitExt, Layer};
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,aws_config=warn,aws_smithy_runtime=warn".into());
    let fmt = tracing_subscriber::fmt::layer();
    let fmt = match format {
        LogFormat::Json => fmt.json().with_current_span(false).boxed(),
        LogFormat::Text => fmt.with_ansi(false).boxed(),
        LogFormat::Auto => fmt.with_ansi(std::io::stdout().is_terminal()).boxed(),
    };
    let (traces, provider) = match bedrock_chat::telemetry::traces::otlp_layer()? {
        Some((layer, provider)) => (Some(layer), Some(provider)),
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(traces)
        .init();
    Ok(provider)
}

async fn serve() -> Result<(), String> {
    let settings = Settings::load().map_err(|e| e.to_string())?;
    let traces = init_logging(settings.log.format)?;
    bedrock_chat::server::serve::raise_open_file_limit();
    let app = Application::build(settings)
        .await
        .map_err(|e| format!("cannot start: {e}"))?;
    let backend = match app.bedrock().backend() {
        Backend::Simulator(_) => {
            "demo model (offline): no AWS credentials found, using the built-in Bedrock simulator".to_owned()
        }
        Backend::Aws { region } => format!("Amazon Bedrock in {region}, through the standard AWS chain"),
    };
    println!(
        "bedrock-chat listening on http://{} ({backend})",
        app.local_addr()
    );
    let served = app.run_until_stopped().await.map_err(|e| e.to_string());
    if let Some(provider) = traces {
        // The last spans, before the process ends.
        let _ = provider.shutdown();
    }
    served
}

async fn run_simulator(args: &[String]) -> Result<(), String> {
    init_logging(LogFormat::Auto)?;
    let addr: SocketAddr = match args {
        [] => SocketAddr::from(([127, 0, 0, 1], 4010)),
        [flag, addr] if flag == "--addr" => addr.parse().map_err(|e| format!("--addr {addr:?}: {e}"))?,
        _ => return Err("usage: bedrock-chat simulator [--addr HOST:PORT]".into()),
    };
    simulator::run_standalone(addr).await.map_err(|e| e.to_string())
}
