use std::path::PathBuf;

use prost::Message;

/// The service definitions of proto/ (docs/API.md §9).
const PROTOS: &[&str] =
    &["zitadel/user/v2/user_service.proto", "zitadel/org/v2/org_service.proto", "zitadel/v1/message.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `sqlx::migrate!` embeds migrations/: rebuild when a file is added or changed.
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=proto");
    // protox compiles in Rust: no protoc on the machine.
    let files = protox::compile(PROTOS, ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    // Served by gRPC server reflection.
    std::fs::write(out.join("herald_descriptor.bin"), files.encode_to_vec())?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(files)?;
    Ok(())
}
