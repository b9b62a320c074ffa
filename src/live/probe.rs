//! Real TCP, HTTP and HTTPS health probes (to be written).
