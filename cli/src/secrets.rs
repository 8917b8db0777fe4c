//! Development secrets of the embedded default, kept in its data folder so
//! that `auditx token --data-dir DIR` mints tokens `standalone` accepts.

use std::path::Path;

use rand::distributions::Alphanumeric;
use rand::Rng;

const JWT_SECRET_FILE: &str = "jwt-secret";
const S3_SECRET_FILE: &str = "s3-secret";

fn random_secret() -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(40)
        .map(char::from)
        .collect()
}

fn read_or_create(data_dir: &Path, file: &str) -> std::io::Result<String> {
    let path = data_dir.join(file);
    match std::fs::read_to_string(&path) {
        Ok(secret) if !secret.trim().is_empty() => Ok(secret.trim().to_owned()),
        _ => {
            std::fs::create_dir_all(data_dir)?;
            let secret = random_secret();
            std::fs::write(&path, &secret)?;
            Ok(secret)
        }
    }
}

/// The HS256 secret: `AUDITX_JWT_SECRET` (already merged into the config)
/// wins; otherwise the one kept in `data_dir`, created on first use.
pub fn jwt_secret(configured: Option<&str>, data_dir: &Path) -> std::io::Result<String> {
    match configured {
        Some(secret) if !secret.is_empty() => Ok(secret.to_owned()),
        _ => read_or_create(data_dir, JWT_SECRET_FILE),
    }
}

/// The embedded S3 endpoint's secret key, kept so presigned URLs and the
/// lake written by `generate --data-dir` stay valid across restarts.
pub fn embedded_s3_secret(data_dir: &Path) -> std::io::Result<String> {
    read_or_create(data_dir, S3_SECRET_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_secret_is_kept_and_a_configured_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let first = jwt_secret(None, dir.path()).unwrap();
        assert_eq!(first.len(), 40);
        assert_eq!(jwt_secret(None, dir.path()).unwrap(), first);
        assert_eq!(
            jwt_secret(Some("configured"), dir.path()).unwrap(),
            "configured"
        );
    }
}
