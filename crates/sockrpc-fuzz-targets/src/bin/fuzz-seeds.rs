//! Writes the seed corpus: `fuzz-seeds [DIR]` puts every seed of [`sockrpc_fuzz_targets::seeds`]
//! in `DIR/<target>/seed-<name>` (default DIR: the repository's `fuzz/corpus`). Seeds are built
//! with the protocol's own encoders, so they follow the format as it is, not as it was typed.

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let dir = std::env::args_os().nth(1).map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus"),
        PathBuf::from,
    );
    for seed in sockrpc_fuzz_targets::seeds::all() {
        let target = dir.join(seed.target);
        std::fs::create_dir_all(&target)?;
        std::fs::write(target.join(&seed.name), &seed.data)?;
    }
    println!("seeds written under {}", dir.display());
    Ok(())
}
