//! oci-spec validates `process.execCPUAffinity` with `regex::Regex::new(..).is_match(..)`,
//! and that one use linked all of regex with its Unicode tables into rrun: a megabyte of
//! binary and 35 pages of relocated pointers that every rrun start copied. regex-lite has the
//! same API for what oci-spec uses, without the tables (`\d` is ASCII there, as a cpu list's
//! digits are for runc and the kernel).
pub use regex_lite::*;
