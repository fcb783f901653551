//! OpenTelemetry trace export (cargo feature `otel`): the request spans (`tower_http`, one per HTTP
//! request) and every span and event at `info` or above go to an OTLP collector over HTTP with
//! protobuf bodies (`--otel-endpoint` / `OTEL_EXPORTER_OTLP_ENDPOINT`), batched by the SDK's own
//! thread. Without the feature, asking for an endpoint on the command line is an error.

/// The path OTLP/HTTP collectors take traces on.
#[cfg_attr(not(feature = "otel"), allow(dead_code))]
const TRACES_PATH: &str = "/v1/traces";

/// The traces URL for an endpoint given as the collector's base (`http://collector:4318`) or as the
/// full traces URL (`…/v1/traces`), as `OTEL_EXPORTER_OTLP_ENDPOINT` is read by the SDKs.
#[cfg_attr(not(feature = "otel"), allow(dead_code))]
pub fn traces_url(endpoint: &str) -> String {
    let base = endpoint.trim().trim_end_matches('/');
    if base.ends_with(TRACES_PATH) {
        base.to_string()
    } else {
        format!("{base}{TRACES_PATH}")
    }
}

/// `url` for logs: without the user and password of `scheme://user:pass@host`.
#[cfg_attr(not(feature = "otel"), allow(dead_code))]
pub fn display_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://[redacted]@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}

#[cfg(feature = "otel")]
mod enabled {
    use anyhow::{Context, Result};
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use opentelemetry_sdk::Resource;
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::Layer;

    /// Flushes and stops the exporter when dropped (at exit).
    pub struct Guard(SdkTracerProvider);

    impl Drop for Guard {
        fn drop(&mut self) {
            if let Err(e) = self.0.shutdown() {
                eprintln!("OpenTelemetry: cannot flush the last spans: {e}");
            }
        }
    }

    /// The tracing layer exporting to `endpoint`, and the guard that flushes it. Needs no async
    /// runtime: the exporter sends from the batch processor's own thread.
    pub fn layer<S>(endpoint: &str) -> Result<(Box<dyn Layer<S> + Send + Sync>, Guard)>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync,
    {
        let url = super::traces_url(endpoint);
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url.clone())
            .build()
            .with_context(|| format!("cannot set up the OTLP exporter for {}", super::display_url(&url)))?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                Resource::builder()
                    .with_service_name("gaia")
                    .with_attribute(opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
                    .build(),
            )
            .build();
        let tracer = provider.tracer("gaia");
        // Request spans are at debug level in tower-http; everything else from `info`. The exporter's
        // own HTTP client stays out (it would trace its own exports).
        let filter = Targets::new()
            .with_default(LevelFilter::INFO)
            .with_target("tower_http", LevelFilter::DEBUG)
            .with_target("sqlx", LevelFilter::WARN)
            .with_target("opentelemetry", LevelFilter::OFF)
            .with_target("opentelemetry_sdk", LevelFilter::OFF)
            .with_target("opentelemetry_otlp", LevelFilter::OFF)
            .with_target("reqwest", LevelFilter::OFF)
            .with_target("hyper_util", LevelFilter::OFF)
            .with_target("h2", LevelFilter::OFF);
        let layer = tracing_opentelemetry::layer().with_tracer(tracer).with_filter(filter).boxed();
        Ok((layer, Guard(provider)))
    }
}

#[cfg(feature = "otel")]
pub use enabled::{layer, Guard};

/// Without the `otel` feature there is no exporter to flush (and no guard is ever made).
#[cfg(not(feature = "otel"))]
pub enum Guard {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_forms() {
        assert_eq!(traces_url("http://localhost:4318"), "http://localhost:4318/v1/traces");
        assert_eq!(traces_url("http://localhost:4318/"), "http://localhost:4318/v1/traces");
        assert_eq!(traces_url("https://c.example/v1/traces"), "https://c.example/v1/traces");
        assert_eq!(display_url("https://u:p@c.example/v1/traces"), "https://[redacted]@c.example/v1/traces");
        assert_eq!(display_url("http://c.example:4318"), "http://c.example:4318");
    }

    #[cfg(feature = "otel")]
    #[test]
    fn builds_an_exporting_layer_without_a_runtime() {
        use tracing_subscriber::prelude::*;
        // Nothing listens there: exports fail quietly in the background, the layer still works.
        let (layer, guard) = layer::<tracing_subscriber::Registry>("http://127.0.0.1:9").unwrap();
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("test-span", answer = 42);
            let _e = span.enter();
            tracing::info!("inside");
        });
        drop(guard);
    }
}
