import CoreMetrics
import Foundation
import Metrics
import Prometheus

/// The service's metrics, recorded through swift-metrics into a Prometheus registry owned by
/// this server (not the process-global `MetricsSystem`, so several servers — tests — can live in
/// one process).
public final class ServiceMetrics: Sendable {
    /// The registry `/metrics` renders.
    public let registry: PrometheusCollectorRegistry
    let factory: PrometheusMetricsFactory
    let queueDepth: CoreMetrics.Gauge
    let running: CoreMetrics.Gauge
    let shed: CoreMetrics.Counter

    /// Latency buckets from 1 ms to 10 s: fine where a CPU classifier answers, coarse beyond.
    static let buckets: [Duration] = [
        .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(20),
        .milliseconds(35), .milliseconds(50), .milliseconds(75), .milliseconds(100), .milliseconds(250),
        .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10),
    ]

    public init() {
        registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = Self.buckets
        self.factory = factory
        queueDepth = CoreMetrics.Gauge(label: "apus_queue_depth", factory: factory)
        running = CoreMetrics.Gauge(label: "apus_inferences_running", factory: factory)
        shed = CoreMetrics.Counter(label: "apus_requests_shed_total", factory: factory)
    }

    /// One answered request.
    func request(route: String, method: String, status: Int, duration: Duration) {
        let dimensions = [("route", route), ("method", method), ("status", String(status))]
        CoreMetrics.Counter(label: "apus_http_requests_total", dimensions: dimensions, factory: factory).increment()
        Metrics.Timer(
            label: "apus_http_request_duration_seconds", dimensions: [("route", route), ("method", method)],
            factory: factory
        ).record(duration: duration)
    }

    /// Time spent in `Model.run` for one request.
    func inference(model: String, duration: Duration) {
        Metrics.Timer(label: "apus_inference_duration_seconds", dimensions: [("model", model)], factory: factory)
            .record(duration: duration)
    }

    /// Time spent decoding and preprocessing one image.
    func preprocessing(model: String, duration: Duration) {
        Metrics.Timer(label: "apus_preprocess_duration_seconds", dimensions: [("model", model)], factory: factory)
            .record(duration: duration)
    }

    func poolChanged(waiting: Int, running: Int) {
        queueDepth.record(waiting)
        self.running.record(running)
    }

    /// The Prometheus text exposition.
    public func render() -> String { registry.emitToString() }
}

extension Metrics.Timer {
    func record(duration: Duration) {
        let (seconds, attoseconds) = duration.components
        recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
