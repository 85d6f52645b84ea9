//! The guest images built by `build.rs` (guest-os kernel and guest-programs) and embedded
//! in the binary, so `vmscope boot` and `vmscope run NAME` need no files beside it.

include!(concat!(env!("OUT_DIR"), "/guest_images.rs"));

/// The embedded guest program called `name`.
pub fn program(name: &str) -> Option<&'static [u8]> {
    PROGRAMS.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

/// Names of the embedded guest programs.
pub fn program_names() -> impl Iterator<Item = &'static str> {
    PROGRAMS.iter().map(|(n, _)| *n)
}
