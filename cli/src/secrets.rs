//! Development secrets of the embedded default, kept in its data folder so
//! that `auditx token --data-dir DIR` mints tokens `standalone` accepts.

use std::path::Path;

use rand::distributions::Alphanumeric;
use rand::Rng;

const JWT_SECRET_FILE: &str = "jwt-secret";
pub const S3_SECRET_FILE: &str = "s3-secret";

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
            write_private(&path, &secret)?;
            Ok(secret)
        }
    }
}

/// Writes a secret readable by its owner only (mode 0600 on Unix), also
/// when the file existed (empty) with looser permissions.
fn write_private(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    file.write_all(secret.as_bytes())
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

    #[cfg(unix)]
    #[test]
    fn secrets_are_readable_by_their_owner_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        jwt_secret(None, dir.path()).unwrap();
        embedded_s3_secret(dir.path()).unwrap();
        for file in [JWT_SECRET_FILE, S3_SECRET_FILE] {
            let mode = std::fs::metadata(dir.path().join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}: {mode:o}");
        }
    }

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
