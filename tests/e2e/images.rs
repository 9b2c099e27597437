//! The images `make images` wrote (make test builds them first): each OCI archive holds one
//! image, tagged with the crate version, whose config runs the binary as the non-root user
//! 65532 with OCI labels, and whose one layer holds the binary, its libraries, CA
//! certificates and the passwd entry. (images.sh has already run each binary in its staged
//! root file system.)

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn archive(name: &str) -> PathBuf {
    let path = testbed::repo_root()
        .join("target/images")
        .join(format!("{name}-{VERSION}.tar"));
    assert!(
        path.exists(),
        "{} is missing: run `make images`",
        path.display()
    );
    path
}

/// A member of a tar archive (`z`: gzip-compressed).
fn member(archive: &Path, name: &str) -> Vec<u8> {
    let out = Command::new("tar")
        .arg("-xOf")
        .arg(archive)
        .arg(name)
        .output()
        .expect("run tar");
    assert!(
        out.status.success(),
        "{name} in {}: {}",
        archive.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn blob(archive: &Path, digest: &str) -> Vec<u8> {
    member(
        archive,
        &format!("blobs/sha256/{}", digest.trim_start_matches("sha256:")),
    )
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("JSON")
}

fn check(name: &str, binary: &str) {
    let archive = archive(name);
    let index = json(&member(&archive, "index.json"));
    let manifests = index["manifests"].as_array().expect("manifests");
    assert_eq!(manifests.len(), 1, "{index}");
    assert_eq!(
        manifests[0]["annotations"]["org.opencontainers.image.ref.name"],
        format!("ghcr.io/mqtt-kafka-bridge/{name}:{VERSION}")
    );
    let manifest = json(&blob(
        &archive,
        manifests[0]["digest"].as_str().expect("digest"),
    ));
    let config = json(&blob(
        &archive,
        manifest["config"]["digest"].as_str().expect("config"),
    ));
    let c = &config["config"];
    assert_eq!(c["User"], "65532:65532", "{config}");
    assert_eq!(c["Entrypoint"][0], format!("/usr/local/bin/{binary}"));
    assert_eq!(c["Labels"]["org.opencontainers.image.version"], VERSION);
    assert_eq!(c["Labels"]["org.opencontainers.image.title"], name);
    assert_eq!(
        c["Labels"]["org.opencontainers.image.licenses"],
        "Apache-2.0"
    );
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1);
    let layer_path =
        std::env::temp_dir().join(format!("{name}-layer-{}.tar.gz", std::process::id()));
    std::fs::write(
        &layer_path,
        blob(&archive, layers[0]["digest"].as_str().expect("layer")),
    )
    .expect("write layer");
    let listing = Command::new("tar")
        .arg("-tzf")
        .arg(&layer_path)
        .output()
        .expect("run tar");
    let _ = std::fs::remove_file(&layer_path);
    let files = String::from_utf8_lossy(&listing.stdout);
    for expected in [
        format!("usr/local/bin/{binary}"),
        "etc/passwd".to_owned(),
        "etc/ssl/certs/ca-certificates.crt".to_owned(),
        "lib64/ld-linux-x86-64.so.2".to_owned(),
        "lib/x86_64-linux-gnu/libssl.so.3".to_owned(),
    ] {
        assert!(
            files
                .lines()
                .any(|f| f.trim_start_matches("./") == expected),
            "{expected} not in the {name} image:\n{files}"
        );
    }
    assert!(!files.contains("bin/sh"), "no shell in the image");
}

#[test]
fn the_bridge_runtime_image_runs_its_binary_as_non_root() {
    check("bridge-runtime", "bridge-runtime");
}

#[test]
fn the_operator_image_runs_its_binary_as_non_root() {
    check("mkb-operator", "mkb-operator");
}
