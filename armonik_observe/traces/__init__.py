"""OpenTelemetry traces: a span per task attempt and a trace per session, live and from the
archive (plan.py says what spans a task makes, output.py sends them through the SDK)."""

GRPC, HTTP = "grpc", "http/protobuf"
PROTOCOLS = (GRPC, HTTP)  # OpenTelemetry's own values for OTEL_EXPORTER_OTLP_PROTOCOL
OTLP, FILE = "otlp", "file"  # the destinations, as the metrics' destination label names them
