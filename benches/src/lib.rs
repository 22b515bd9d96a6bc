//! Benches live in benches/*.rs.
