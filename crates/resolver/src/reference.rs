//! Image references (placeholder until the parser lands).
