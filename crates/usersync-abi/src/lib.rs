//! The stable plugin ABI (abi_stable): root module, export macro, panic guard, loader.
