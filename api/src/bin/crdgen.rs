//! Writes the CRD manifest: `crdgen > crds/mqttkafkabridges.mqttkafka.io.yaml` (see `make crds`).

fn main() -> std::process::ExitCode {
    match mkb_api::crd::crd_yaml() {
        Ok(yaml) => {
            print!("{yaml}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("crdgen: cannot render the CRD: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
