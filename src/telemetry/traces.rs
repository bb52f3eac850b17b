//! OpenTelemetry traces over OTLP, when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; nothing otherwise.
//!
//! Our `tracing` spans become OpenTelemetry spans (`tracing-opentelemetry`):
//! a span per HTTP request (`server::access_log`), a span per answer as its
//! child, and the Bedrock call as the answer's child, carrying the model id,
//! token counts, time to first token and stop reason. Only spans of this
//! crate are exported, not those of the libraries under it.
//!
//! The exporter follows the standard variables: the endpoint, the protocol
//! (`OTEL_EXPORTER_OTLP_PROTOCOL`: `http/protobuf` by default, or
//! `http/json`), headers, timeout, and the batch processor's
//! `OTEL_BSP_*`. `OTEL_SERVICE_NAME` names the service (`bedrock-chat` by
//! default).

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::{trace::SdkTracerProvider, Resource};
use std::sync::atomic::{AtomicBool, Ordering};
use tracing::{Level, Subscriber};
use tracing_subscriber::{filter::Targets, registry::LookupSpan, Layer};

/// Set once an exporting layer is made: until then spans would be built
/// for nobody, so the request and answer spans are not made at all.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported (and so worth making).
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// The exporting layer and its provider (to flush at exit), when an OTLP
/// endpoint is configured.
pub fn otlp_layer<S>() -> Result<Option<(impl Layer<S>, SdkTracerProvider)>, String>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    let configured = |var: &str| std::env::var_os(var).is_some_and(|v| !v.is_empty());
    if !configured("OTEL_EXPORTER_OTLP_ENDPOINT") && !configured("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| format!("OpenTelemetry exporter: {e}"))?;
    let mut resource = Resource::builder();
    if !configured("OTEL_SERVICE_NAME") {
        resource = resource.with_service_name("bedrock-chat");
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build();
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("bedrock-chat"))
        .with_filter(Targets::new().with_target("bedrock_chat", Level::INFO));
    EXPORTING.store(true, Ordering::Relaxed);
    Ok(Some((layer, provider)))
}

/// The trace id of `span` (32 hex digits), when it is exported.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let context = span.context();
    let id = context.span().span_context().trace_id();
    (id != opentelemetry::trace::TraceId::INVALID).then(|| id.to_string())
}
