//! Records the target triple this crate is compiled for, so a host can refuse packages built for
//! another target.
fn main() {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=USERSYNC_BUILD_TARGET={target}");
}
