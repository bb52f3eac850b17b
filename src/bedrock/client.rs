//! The ConverseStream call and the translation of its events.

use super::{simulator, BedrockError, ErrorKind};
use aws_sdk_bedrockruntime::{
    config::{retry::RetryConfig, Credentials, Region},
    primitives::event_stream::EventReceiver,
    types::{
        error::ConverseStreamOutputError, ContentBlock, ContentBlockDelta, ConversationRole,
        ConverseStreamOutput as SdkEvent, InferenceConfiguration, Message, SystemContentBlock,
    },
    Client,
};
use std::{net::SocketAddr, time::Instant};

/// Where the SDK client sends its requests.
#[derive(Clone)]
pub enum Backend {
    /// Real Bedrock, or whatever `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` names.
    Aws { region: String },
    /// The in-process simulator: a demo model that works offline.
    Simulator(simulator::SimulatorHandle),
}

/// Connects the SDK client to real Bedrock through the AWS chain, or starts the
/// simulator on a loopback port and connects to that.
pub async fn connect(
    use_aws: bool,
    fallback_region: &str,
    max_attempts: u32,
) -> std::io::Result<BedrockChat> {
    let retry = RetryConfig::standard().with_max_attempts(max_attempts);
    if use_aws {
        let region_chain = aws_config::meta::region::RegionProviderChain::default_provider()
            .or_else(Region::new(fallback_region.to_owned()));
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(region_chain)
            .retry_config(retry);
        // A custom endpoint (a proxy, or a standalone simulator) needs no AWS
        // identity; sign with a placeholder when the chain has none.
        if std::env::var_os("AWS_ENDPOINT_URL_BEDROCK_RUNTIME").is_some() && !aws_credentials_configured() {
            loader = loader.credentials_provider(placeholder_credentials());
        }
        let sdk_config = loader.load().await;
        let region = sdk_config.region().map(|r| r.to_string()).unwrap_or_default();
        Ok(BedrockChat {
            client: Client::new(&sdk_config),
            backend: Backend::Aws { region },
        })
    } else {
        let sim = simulator::spawn(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        Ok(BedrockChat::for_simulator(sim, max_attempts))
    }
}

/// Whether the standard chain has something to find without asking the
/// network: access keys, a profile, shared files, web identity or container
/// credentials. Instance roles need `backend = "aws"` (probing the instance
/// metadata service on every start of a laptop would be slow and pointless).
pub fn aws_credentials_configured() -> bool {
    let set = |v: &str| std::env::var_os(v).is_some_and(|s| !s.is_empty());
    if [
        "AWS_ACCESS_KEY_ID",
        "AWS_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ]
    .iter()
    .any(|v| set(v))
    {
        return true;
    }
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let file = |var: &str, default: &str| {
        std::env::var_os(var)
            .map(std::path::PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(default)))
            .is_some_and(|p| p.exists())
    };
    file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials") || file("AWS_CONFIG_FILE", ".aws/config")
}

fn placeholder_credentials() -> Credentials {
    Credentials::new(
        "bedrock-chat",
        "bedrock-chat",
        None,
        None,
        "bedrock-chat-placeholder",
    )
}

/// A Bedrock client for chat, bound to one backend.
#[derive(Clone)]
pub struct BedrockChat {
    client: Client,
    backend: Backend,
}

/// A message of the conversation sent to the model.
#[derive(Debug, Clone, Copy)]
pub struct Turn<'a> {
    pub from_user: bool,
    pub text: &'a str,
}

/// Everything one ConverseStream call needs.
#[derive(Debug, Clone)]
pub struct ConverseInput<'a> {
    pub model_id: &'a str,
    pub system_prompt: &'a str,
    pub turns: Vec<Turn<'a>>,
    pub max_tokens: i32,
    pub temperature: f32,
}

/// Our own typed view of what the model sends.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelEvent {
    /// More answer text.
    Text(String),
    /// The model finished generating, for this reason.
    Stop(StopReason),
    /// Token counts and Bedrock's latency figure; arrives after `Stop`.
    Usage(TokenUsage),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopReason(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenUsage {
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub total_tokens: u32,
    pub latency_ms: u64,
}

impl BedrockChat {
    /// A client of the given simulator, signing with placeholder credentials.
    pub fn for_simulator(sim: simulator::SimulatorHandle, max_attempts: u32) -> Self {
        let config = aws_sdk_bedrockruntime::config::Builder::new()
            .retry_config(RetryConfig::standard().with_max_attempts(max_attempts))
            .behavior_version(aws_sdk_bedrockruntime::config::BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(placeholder_credentials())
            .endpoint_url(sim.endpoint_url())
            .build();
        Self {
            client: Client::from_conf(config),
            backend: Backend::Simulator(sim),
        }
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// True when answers come from the built-in demo model.
    pub fn is_demo(&self) -> bool {
        matches!(self.backend, Backend::Simulator(_))
    }

    /// Starts an answer. Errors before the first event (throttling, access,
    /// validation, ...) are returned here; later ones come from the stream.
    /// Dropping the returned stream closes the connection to Bedrock, which
    /// stops generation (and billing).
    pub async fn converse_stream(&self, input: &ConverseInput<'_>) -> Result<ModelStream, BedrockError> {
        let messages = input
            .turns
            .iter()
            .map(|turn| {
                Message::builder()
                    .role(if turn.from_user {
                        ConversationRole::User
                    } else {
                        ConversationRole::Assistant
                    })
                    .content(ContentBlock::Text(turn.text.to_owned()))
                    .build()
                    .map_err(|e| BedrockError::new(ErrorKind::Setup, e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut request = self
            .client
            .converse_stream()
            .model_id(input.model_id)
            .set_messages(Some(messages))
            .inference_config(
                InferenceConfiguration::builder()
                    .max_tokens(input.max_tokens)
                    .temperature(input.temperature)
                    .build(),
            );
        if !input.system_prompt.is_empty() {
            request = request.system(SystemContentBlock::Text(input.system_prompt.to_owned()));
        }
        let started = Instant::now();
        let output = request.send().await?;
        Ok(ModelStream {
            events: output.stream,
            started,
        })
    }
}

/// The answer as it arrives.
pub struct ModelStream {
    events: EventReceiver<SdkEvent, ConverseStreamOutputError>,
    started: Instant,
}

impl ModelStream {
    /// The next event; `None` once Bedrock has closed the stream.
    pub async fn next(&mut self) -> Option<Result<ModelEvent, BedrockError>> {
        loop {
            let event = match self.events.recv().await {
                Ok(Some(event)) => event,
                Ok(None) => return None,
                Err(err) => return Some(Err(err.into())),
            };
            match event {
                SdkEvent::ContentBlockDelta(block) => {
                    if let Some(ContentBlockDelta::Text(text)) = block.delta {
                        if !text.is_empty() {
                            return Some(Ok(ModelEvent::Text(text)));
                        }
                    }
                }
                SdkEvent::MessageStop(stop) => {
                    return Some(Ok(ModelEvent::Stop(StopReason(
                        stop.stop_reason.as_str().to_owned(),
                    ))))
                }
                SdkEvent::Metadata(meta) => {
                    let usage = meta.usage.as_ref();
                    let to_u32 = |n: i32| u32::try_from(n).unwrap_or(0);
                    return Some(Ok(ModelEvent::Usage(TokenUsage {
                        input_tokens: usage.map_or(0, |u| to_u32(u.input_tokens)),
                        output_tokens: usage.map_or(0, |u| to_u32(u.output_tokens)),
                        total_tokens: usage.map_or(0, |u| to_u32(u.total_tokens)),
                        latency_ms: meta
                            .metrics
                            .as_ref()
                            .and_then(|m| u64::try_from(m.latency_ms).ok())
                            .unwrap_or_else(|| self.started.elapsed().as_millis() as u64),
                    })));
                }
                // Message/block start and stop carry nothing we show; tool use
                // and reasoning blocks are not offered yet.
                _ => {}
            }
        }
    }
}
