//! The ConverseStream call and the translation of its events.

use super::{
    messages::ConverseInput,
    rounds::{AnswerStream, AnswerTools},
    simulator,
    stream::ModelStream,
    BedrockError,
};
use aws_sdk_bedrockruntime::{
    config::{
        interceptors::BeforeTransmitInterceptorContextRef, retry::RetryConfig, ConfigBag, Credentials,
        Intercept, Region, RuntimeComponents,
    },
    error::BoxError,
    types::{InferenceConfiguration, SystemContentBlock},
    Client,
};
use aws_smithy_types::config_bag::{Storable, StoreReplace};
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
        let config = aws_sdk_bedrockruntime::config::Builder::from(&sdk_config)
            .interceptor(CountRetries)
            .build();
        Ok(BedrockChat {
            client: Client::from_conf(config),
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

/// Counts the SDK's retries for `/metrics`: every attempt of a call after
/// its first. (The SDK retries inside one `send`; nothing else sees them.)
#[derive(Debug)]
struct CountRetries;

/// Marks a call that has made an attempt (in its own configuration bag,
/// which lives as long as the call).
#[derive(Debug, Clone)]
struct AttemptMade;

impl Storable for AttemptMade {
    type Storer = StoreReplace<Self>;
}

impl Intercept for CountRetries {
    fn name(&self) -> &'static str {
        "CountRetries"
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if cfg.load::<AttemptMade>().is_some() {
            metrics::counter!(crate::telemetry::BEDROCK_RETRIES).increment(1);
        } else {
            cfg.interceptor_state().store_put(AttemptMade);
        }
        Ok(())
    }
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

impl BedrockChat {
    /// A client of the given simulator, signing with placeholder credentials.
    pub fn for_simulator(sim: simulator::SimulatorHandle, max_attempts: u32) -> Self {
        let config = aws_sdk_bedrockruntime::config::Builder::new()
            .retry_config(RetryConfig::standard().with_max_attempts(max_attempts))
            .behavior_version(aws_sdk_bedrockruntime::config::BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(placeholder_credentials())
            .endpoint_url(sim.endpoint_url())
            .interceptor(CountRetries)
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

    /// Starts one response. Errors before the first event (throttling,
    /// access, validation, ...) are returned here; later ones come from the
    /// stream. Dropping the returned stream closes the connection to
    /// Bedrock, which stops generation (and billing).
    pub async fn converse_stream(&self, input: &ConverseInput) -> Result<ModelStream, BedrockError> {
        let mut inference = InferenceConfiguration::builder().max_tokens(input.max_tokens);
        if let Some(temperature) = input.temperature {
            inference = inference.temperature(temperature);
        }
        let mut request = self
            .client
            .converse_stream()
            .model_id(&input.model_id)
            .set_messages(Some(input.sdk_messages()?))
            .set_tool_config(input.sdk_tool_config()?)
            .set_additional_model_request_fields(input.sdk_additional_fields())
            .inference_config(inference.build());
        if !input.system_prompt.is_empty() {
            request = request.system(SystemContentBlock::Text(input.system_prompt.clone()));
        }
        if input.caches_system_prompt() {
            request = request.system(SystemContentBlock::CachePoint(super::messages::cache_point()?));
        }
        let started = Instant::now();
        let output = request.send().await?;
        Ok(ModelStream::new(output.stream, started))
    }

    /// Starts an answer that may call `tools` (with `input.tools` offered):
    /// the first response starts here, like [`Self::converse_stream`]; the
    /// tool rounds follow inside the returned stream.
    pub async fn answer(
        &self,
        input: ConverseInput,
        tools: Option<AnswerTools>,
    ) -> Result<AnswerStream, BedrockError> {
        let first = self.converse_stream(&input).await?;
        Ok(AnswerStream::new(self.clone(), input, first, tools))
    }
}
