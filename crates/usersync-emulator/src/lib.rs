//! Faithful local emulators of identity-provider APIs, with a seeded generator and fault injection.
