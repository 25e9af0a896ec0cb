//! TEST FIXTURE: an ordinary C-ABI shared library. It exports a function but no usersync root
//! module; the host must refuse it as "not a usersync plugin".

/// Adds two numbers (a symbol so that the library is not empty).
#[unsafe(no_mangle)]
pub extern "C" fn fixture_add(a: u32, b: u32) -> u32 {
    a.wrapping_add(b)
}
