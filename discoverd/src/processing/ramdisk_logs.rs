//! The ramdisk's logs (ironic-inspector `process.py` `_store_logs`): IPA
//! sends its logs as a base64 tarball in the report's `logs` field. The
//! field is taken out of the data before anything is stored; when
//! `[processing] ramdisk_logs_dir` is set the decoded logs are written
//! there if processing failed (the ramdisk's own error, a hook, the
//! lookup, Ironic) or, with `always_store_ramdisk_logs`, every time. The
//! file is named by `ramdisk_logs_filename_format` (the inspector's
//! `{uuid}_{dt:%Y%m%d-%H%M%S.%f}.tar.gz` by default), mode 0600; the
//! values taken from the report (`{mac}`, `{bmc}`) are reduced to
//! `[A-Za-z0-9._:-]`, so the name never leaves the directory. Logs that
//! are not a string or not base64 are logged and skipped.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::Value;

use super::{Data, lookup_attributes};
use crate::domain::{NodeId, Timestamp};

/// Most bytes of decoded logs written (the request body is smaller).
const MAX_LOG_BYTES: usize = 64 * 1024 * 1024;
/// Longest file name (the usual file system limit).
const MAX_NAME: usize = 255;

/// One piece of a file name format.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Uuid,
    Mac,
    Bmc,
    /// `{dt}` (`None`: Python's `str(datetime)`) or `{dt:strftime}`.
    Dt(Option<String>),
}

/// `ramdisk_logs_filename_format`: Python `str.format` with the fields
/// `uuid`, `mac`, `bmc` and `dt` (strftime `%Y %m %d %H %M %S %f %%`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileNameFormat(Vec<Piece>);

impl Default for FileNameFormat {
    fn default() -> Self {
        FileNameFormat(vec![
            Piece::Uuid,
            Piece::Text("_".into()),
            Piece::Dt(Some("%Y%m%d-%H%M%S.%f".into())),
            Piece::Text(".tar.gz".into()),
        ])
    }
}

impl FileNameFormat {
    /// Parses a format; the error says what is wrong.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.contains('/') {
            return Err("the file name may not contain '/'".into());
        }
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    text.push('}');
                }
                '}' => return Err("single '}' (write '}}' for a brace)".into()),
                '{' => {
                    let mut field = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) => field.push(c),
                            None => return Err("single '{' (write '{{' for a brace)".into()),
                        }
                    }
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(match field.split_once(':') {
                        None if field == "uuid" => Piece::Uuid,
                        None if field == "mac" => Piece::Mac,
                        None if field == "bmc" => Piece::Bmc,
                        None if field == "dt" => Piece::Dt(None),
                        Some(("dt", spec)) => {
                            check_strftime(spec)?;
                            Piece::Dt(Some(spec.to_owned()))
                        }
                        _ => {
                            return Err(format!(
                                "unknown field {{{field}}}: use {{uuid}}, {{mac}}, {{bmc}}, {{dt}} or {{dt:strftime}}"
                            ));
                        }
                    });
                }
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        if pieces.is_empty() {
            return Err("empty file name".into());
        }
        Ok(FileNameFormat(pieces))
    }

    /// The file name for one report.
    pub fn render(&self, uuid: Option<NodeId>, data: &Data, now: Timestamp) -> String {
        let unknown = || "unknown".to_owned();
        let mac = pxe_mac(data).map_or_else(unknown, |m| safe(&m.replace(':', "")));
        let bmc = lookup_attributes(data)
            .bmc_address
            .map_or_else(unknown, |b| safe(&b));
        let mut name = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(t) => name.push_str(t),
                Piece::Uuid => name.push_str(&uuid.map_or_else(unknown, |u| u.to_string())),
                Piece::Mac => name.push_str(&mac),
                Piece::Bmc => name.push_str(&bmc),
                Piece::Dt(spec) => name.push_str(&strftime(now, spec.as_deref())),
            }
        }
        let mut end = name.len().min(MAX_NAME);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        name.truncate(end);
        name
    }
}

fn check_strftime(spec: &str) -> Result<(), String> {
    let mut chars = spec.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.next() {
                Some('Y' | 'm' | 'd' | 'H' | 'M' | 'S' | 'f' | '%') => {}
                other => {
                    return Err(format!(
                        "strftime directive %{} is not supported (use %Y %m %d %H %M %S %f %%)",
                        other.map(String::from).unwrap_or_default()
                    ));
                }
            }
        }
    }
    Ok(())
}

fn strftime(now: Timestamp, spec: Option<&str>) -> String {
    // "YYYY-MM-DDTHH:MM:SS.ffffff"
    let iso = now.iso8601();
    let part = |a: usize, b: usize| iso.get(a..b).unwrap_or("").to_owned();
    let Some(spec) = spec else {
        return iso.replacen('T', " ", 1);
    };
    let mut out = String::new();
    let mut chars = spec.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        out.push_str(&match chars.next() {
            Some('Y') => part(0, 4),
            Some('m') => part(5, 7),
            Some('d') => part(8, 10),
            Some('H') => part(11, 13),
            Some('M') => part(14, 16),
            Some('S') => part(17, 19),
            Some('f') => part(20, 26),
            _ => "%".to_owned(),
        });
    }
    safe(&out)
}

/// The report's PXE MAC as the inspector's `get_pxe_mac` reads it.
fn pxe_mac(data: &Data) -> Option<String> {
    let b = data.get("boot_interface").and_then(Value::as_str)?;
    if b.is_empty() {
        return None;
    }
    Some(match b.split_once('-') {
        Some((_, mac)) => mac.replace('-', ":").to_ascii_lowercase(),
        None => b.to_owned(),
    })
}

/// A value from the report, safe in a file name.
fn safe(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._:-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.chars().all(|c| c == '.') {
        out = out.replace('.', "_");
    }
    out
}

/// `[processing] ramdisk_logs_dir`, `always_store_ramdisk_logs`,
/// `ramdisk_logs_filename_format`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RamdiskLogs {
    /// `None`: logs are not kept.
    pub dir: Option<PathBuf>,
    pub always: bool,
    pub format: FileNameFormat,
}

impl RamdiskLogs {
    /// Takes `logs` out of the report (it is never stored with the data).
    pub fn take(data: &mut Data) -> Option<Value> {
        data.remove("logs").filter(|v| !v.is_null())
    }

    /// Writes `logs` for a report whose processing ended (`failed` or
    /// not); the file written, if any. Blocking (file system).
    pub fn store(
        &self,
        logs: Option<&Value>,
        failed: bool,
        node: Option<NodeId>,
        data: &Data,
        now: Timestamp,
    ) -> Option<PathBuf> {
        if !failed && !self.always {
            return None;
        }
        let Some(dir) = &self.dir else {
            tracing::debug!("ramdisk logs not stored: ramdisk_logs_dir is not set");
            return None;
        };
        let Some(logs) = logs else {
            tracing::warn!("no logs were passed by the ramdisk");
            return None;
        };
        let Some(text) = logs.as_str() else {
            tracing::warn!("ramdisk logs not stored: `logs` is not a string");
            return None;
        };
        let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        if compact.len() / 4 * 3 > MAX_LOG_BYTES {
            tracing::warn!("ramdisk logs not stored: larger than {MAX_LOG_BYTES} bytes");
            return None;
        }
        let bytes = match base64::engine::general_purpose::STANDARD.decode(compact.as_bytes()) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("ramdisk logs not stored: not base64 ({e})");
                return None;
            }
        };
        let name = self.format.render(node, data, now);
        let path = dir.join(&name);
        match write(dir, &path, &bytes) {
            Ok(()) => {
                tracing::info!(file = %path.display(), "ramdisk logs stored");
                Some(path)
            }
            Err(e) => {
                tracing::error!(file = %path.display(), "could not store the ramdisk logs: {e}");
                None
            }
        }
    }
}

fn write(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    fn data(v: Value) -> Data {
        serde_json::from_value(v).unwrap_or_default()
    }

    /// 2026-12-03T12:34:56.789012 UTC.
    const NOW: i64 = 1_796_301_296_789_012;

    #[test]
    fn file_names_as_the_inspector_formats_them() -> Result<(), String> {
        let now = Timestamp::from_micros(NOW);
        let id: Option<NodeId> = "9f2a3a4e-8c3c-4b5e-9d6a-1c2b3c4d5e6f".parse().ok();
        let d = data(json!({"boot_interface": "01-AA-bb-cc-dd-ee-ff", "ipmi_address": "10.0.0.5"}));
        assert_eq!(
            FileNameFormat::default().render(id, &d, now),
            "9f2a3a4e-8c3c-4b5e-9d6a-1c2b3c4d5e6f_20261203-123456.789012.tar.gz"
        );
        let f = FileNameFormat::parse("{mac}-{bmc}-{uuid}-{dt}{{x}}.tgz")?;
        assert_eq!(
            f.render(None, &d, now),
            "aabbccddeeff-10.0.0.5-unknown-2026-12-03 12:34:56.789012{x}.tgz"
        );
        // Values from the report never leave the directory.
        let evil = data(json!({"boot_interface": "../../etc", "ipmi_address": "../../../root/.ssh"}));
        let name = FileNameFormat::parse("{bmc}{mac}")?.render(None, &evil, now);
        assert!(!name.contains('/'), "{name}");
        assert_eq!(
            FileNameFormat::parse("{mac}")?.render(None, &data(json!({"boot_interface": ".."})), now),
            "__"
        );
        for bad in ["{uuid", "x}", "{node}", "{dt:%s}", "{uuid:.8}", "a/{uuid}", ""] {
            assert!(FileNameFormat::parse(bad).is_err(), "{bad}");
        }
        Ok(())
    }

    #[test]
    fn logs_are_written_only_when_asked_and_safely() -> std::io::Result<()> {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path().join("logs");
        let mut logs = RamdiskLogs {
            dir: Some(dir.clone()),
            always: false,
            format: FileNameFormat::parse("{bmc}.tar.gz").map_err(std::io::Error::other)?,
        };
        let mut d = data(json!({"ipmi_address": "10.0.0.5", "logs": "aGVsbG8g\nd29ybGQ=", "error": "boom"}));
        let taken = RamdiskLogs::take(&mut d);
        assert!(!d.contains_key("logs"));
        let now = Timestamp::from_micros(NOW);
        assert_eq!(logs.store(taken.as_ref(), false, None, &d, now), None);
        let path = logs.store(taken.as_ref(), true, None, &d, now);
        assert_eq!(path, Some(dir.join("10.0.0.5.tar.gz")));
        assert_eq!(std::fs::read(dir.join("10.0.0.5.tar.gz"))?, b"hello world");
        let mode = std::fs::metadata(dir.join("10.0.0.5.tar.gz"))?
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        logs.always = true;
        assert!(logs.store(taken.as_ref(), false, None, &d, now).is_some());
        // Bad base64, a non-string, no logs, no directory: skipped.
        assert_eq!(logs.store(Some(&json!("!!notbase64")), true, None, &d, now), None);
        assert_eq!(logs.store(Some(&json!(42)), true, None, &d, now), None);
        assert_eq!(logs.store(None, true, None, &d, now), None);
        // A symlink planted where the file goes is not followed.
        let target = tmp.path().join("target");
        std::fs::write(&target, b"keep")?;
        std::os::unix::fs::symlink(&target, dir.join("10.0.0.5.tar.gz.lnk"))?;
        let link_logs = RamdiskLogs {
            format: FileNameFormat::parse("{bmc}.tar.gz.lnk").map_err(std::io::Error::other)?,
            ..logs.clone()
        };
        assert_eq!(link_logs.store(taken.as_ref(), true, None, &d, now), None);
        assert_eq!(std::fs::read(&target)?, b"keep");
        logs.dir = None;
        assert_eq!(logs.store(taken.as_ref(), true, None, &d, now), None);
        Ok(())
    }
}
