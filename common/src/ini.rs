//! Reading `discoverd.conf`-style INI files with errors that name the file,
//! section, option and value.
//!
//! Both binaries read the same file (the daemon its `[discoverd]` section,
//! the helper its `[fw_helper]` section), so the typed accessors live here.
//! Parsing follows Python's ConfigParser, which discoverd 1.0 used: `=` or
//! `:` separate key and value, `#` and `;` start a comment line, option
//! names are case-insensitive, values are taken literally (no quotes, no
//! escapes), and the last of repeated options wins.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;

/// Largest config file we read. Real ones are a few KiB.
pub const MAX_CONFIG_LEN: u64 = 1024 * 1024;

/// Everything that can be wrong with a config file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("failed to read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path} is {len} bytes, larger than the {MAX_CONFIG_LEN}-byte limit")]
    TooLarge { path: PathBuf, len: u64 },
    #[error("failed to parse config file {path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path}: [{section}] {option} = {value:?}: {reason}")]
    BadValue {
        path: PathBuf,
        section: String,
        option: String,
        value: String,
        reason: String,
    },
    #[error("{path}: [{section}] has unknown option {option:?}")]
    UnknownOption {
        path: PathBuf,
        section: String,
        option: String,
    },
    #[error("{path}: [{section}] {option} is required but not set")]
    Missing {
        path: PathBuf,
        section: String,
        option: String,
    },
}

/// A parsed INI file.
#[derive(Debug)]
pub struct IniFile {
    path: PathBuf,
    ini: ini::Ini,
}

impl IniFile {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let read_err = |source| ConfigError::Read {
            path: path.to_owned(),
            source,
        };
        let len = std::fs::metadata(path).map_err(read_err)?.len();
        if len > MAX_CONFIG_LEN {
            return Err(ConfigError::TooLarge {
                path: path.to_owned(),
                len,
            });
        }
        let text = std::fs::read_to_string(path).map_err(read_err)?;
        Self::parse(path, &text)
    }

    /// Parses `text` as if read from `path` (used in errors).
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let opts = ini::ParseOption {
            enabled_quote: false,
            enabled_escape: false,
            ..ini::ParseOption::default()
        };
        let ini = ini::Ini::load_from_str_opt(text, opts).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        Ok(IniFile {
            path: path.to_owned(),
            ini,
        })
    }

    /// The file this was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Names of the sections present, in file order.
    pub fn section_names(&self) -> Vec<&str> {
        self.ini.sections().flatten().collect()
    }

    /// A view of one section; an absent section reads as empty.
    pub fn section<'a>(&'a self, name: &'a str) -> Section<'a> {
        Section {
            file: self,
            name,
            props: self.ini.section(Some(name)),
            used: Mutex::new(BTreeSet::new()),
        }
    }
}

/// One section, with typed accessors that remember which options were read
/// so that [`Section::reject_unknown`] can name the rest.
#[derive(Debug)]
pub struct Section<'a> {
    file: &'a IniFile,
    name: &'a str,
    props: Option<&'a ini::Properties>,
    used: Mutex<BTreeSet<String>>,
}

impl<'a> Section<'a> {
    /// True when the section exists in the file.
    pub fn exists(&self) -> bool {
        self.props.is_some()
    }

    fn mark(&self, key: &str) {
        if let Ok(mut used) = self.used.lock() {
            used.insert(key.to_owned());
        }
    }

    /// The raw value of `key` (case-insensitive), trimmed; the last one wins.
    pub fn raw(&self, key: &str) -> Option<&'a str> {
        self.mark(key);
        let props = self.props?;
        props
            .iter()
            .filter(|(k, _)| k.trim().eq_ignore_ascii_case(key))
            .map(|(_, v)| v.trim())
            .next_back()
    }

    /// Every value of a repeated option (oslo.config's multi-valued
    /// options), in file order, trimmed, empty ones dropped.
    pub fn all(&self, key: &str) -> Vec<&'a str> {
        self.mark(key);
        let Some(props) = self.props else {
            return Vec::new();
        };
        props
            .iter()
            .filter(|(k, _)| k.trim().eq_ignore_ascii_case(key))
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
            .collect()
    }

    /// A string option; an empty value counts as unset, as in ConfigParser
    /// users of discoverd 1.0 (`if not conf.get(...)`).
    pub fn string(&self, key: &str) -> Option<String> {
        self.raw(key).filter(|v| !v.is_empty()).map(str::to_owned)
    }

    /// A string option with a default.
    pub fn string_or(&self, key: &str, default: &str) -> String {
        self.string(key).unwrap_or_else(|| default.to_owned())
    }

    /// A required string option.
    pub fn required(&self, key: &str) -> Result<String, ConfigError> {
        self.string(key).ok_or_else(|| ConfigError::Missing {
            path: self.file.path.clone(),
            section: self.name.to_owned(),
            option: key.to_owned(),
        })
    }

    /// An error for `key` with `value`, for checks done by the caller.
    pub fn bad_value(&self, key: &str, value: &str, reason: impl Into<String>) -> ConfigError {
        let shown: String = value.chars().take(200).collect();
        ConfigError::BadValue {
            path: self.file.path.clone(),
            section: self.name.to_owned(),
            option: key.to_owned(),
            value: shown,
            reason: reason.into(),
        }
    }

    /// A boolean as ConfigParser reads it: `1/yes/true/on` or
    /// `0/no/false/off`, in any case.
    pub fn boolean(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.raw(key).filter(|v| !v.is_empty()) {
            None => Ok(default),
            Some(v) => parse_bool(v)
                .ok_or_else(|| self.bad_value(key, v, "expected a boolean: 1/yes/true/on or 0/no/false/off")),
        }
    }

    /// Any value with a `FromStr` implementation; the parse error becomes the reason.
    pub fn parsed<T>(&self, key: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.raw(key).filter(|v| !v.is_empty()) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|e: T::Err| self.bad_value(key, v, e.to_string())),
        }
    }

    /// An integer, with a description of what it is for in the error.
    pub fn integer(&self, key: &str, default: i64) -> Result<i64, ConfigError> {
        match self.raw(key).filter(|v| !v.is_empty()) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| self.bad_value(key, v, "expected an integer")),
        }
    }

    /// A non-negative number of seconds, fractions allowed.
    pub fn seconds(&self, key: &str, default: f64) -> Result<f64, ConfigError> {
        match self.raw(key).filter(|v| !v.is_empty()) {
            None => Ok(default),
            Some(v) => match v.parse::<f64>() {
                Ok(s) if s.is_finite() && s >= 0.0 => Ok(s),
                _ => Err(self.bad_value(key, v, "expected a non-negative number of seconds")),
            },
        }
    }

    /// A comma-separated list with blank entries dropped.
    pub fn list(&self, key: &str, default: &[&str]) -> Vec<String> {
        match self.raw(key) {
            None => default.iter().map(|s| (*s).to_owned()).collect(),
            Some(v) => v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }

    /// The option names asked for so far, lower-cased: after a full load,
    /// every option the program knows.
    pub fn used_keys(&self) -> BTreeSet<String> {
        self.used.lock().map(|u| u.clone()).unwrap_or_default()
    }

    /// Fails on the first option present in the file that was never asked
    /// for, or that is not in `also_known` (options accepted and ignored,
    /// such as ones a newer or older release used).
    pub fn reject_unknown(&self, also_known: &[&str]) -> Result<(), ConfigError> {
        let Some(props) = self.props else {
            return Ok(());
        };
        let used = self.used_keys();
        for (k, _) in props.iter() {
            let k = k.trim().to_ascii_lowercase();
            if !used.contains(&k) && !also_known.contains(&k.as_str()) {
                return Err(ConfigError::UnknownOption {
                    path: self.file.path.clone(),
                    section: self.name.to_owned(),
                    option: k,
                });
            }
        }
        Ok(())
    }
}

/// ConfigParser's boolean spellings.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Some(true),
        "0" | "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> IniFile {
        IniFile::parse(Path::new("/etc/test.conf"), text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn configparser_syntax() -> Result<(), ConfigError> {
        let f = file(
            "# comment\n; other comment\n[discoverd]\nTimeout = 5\nname: value with spaces \npassword = a\\b\"c\"\nx = 1\nx = 2\nempty =\n",
        );
        let s = f.section("discoverd");
        assert_eq!(s.integer("timeout", 0)?, 5);
        assert_eq!(s.string("name").as_deref(), Some("value with spaces"));
        assert_eq!(s.string("password").as_deref(), Some("a\\b\"c\""));
        assert_eq!(s.integer("x", 0)?, 2);
        assert_eq!(s.string("empty"), None);
        assert_eq!(s.string_or("empty", "dflt"), "dflt");
        Ok(())
    }

    #[test]
    fn booleans_as_in_discoverd() -> Result<(), ConfigError> {
        let f = file("[s]\na = YES\nb = off\nc = 1\nd = maybe\n");
        let s = f.section("s");
        assert!(s.boolean("a", false)?);
        assert!(!s.boolean("b", true)?);
        assert!(s.boolean("c", false)?);
        assert!(s.boolean("missing", true)?);
        let err = s.boolean("d", false).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("/etc/test.conf: [s] d = \"maybe\": expected a boolean: 1/yes/true/on or 0/no/false/off")
        );
        Ok(())
    }

    #[test]
    fn bad_numbers_name_file_option_and_value() {
        let f = file("[discoverd]\ntimeout = abc\nperiod = -1\n");
        let s = f.section("discoverd");
        let e = s.integer("timeout", 3600).err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("/etc/test.conf: [discoverd] timeout = \"abc\": expected an integer")
        );
        assert!(s.seconds("period", 1.0).is_err());
    }

    #[test]
    fn unknown_options_are_named() {
        let f = file("[discoverd]\ntimeout = 1\ntimout = 2\nold = 3\n");
        let s = f.section("discoverd");
        let _ = s.integer("timeout", 0);
        let e = s.reject_unknown(&["old"]).err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("/etc/test.conf: [discoverd] has unknown option \"timout\"")
        );
    }

    #[test]
    fn lists_drop_blank_entries() {
        let f = file("[s]\nhooks = ramdisk_error, ,scheduler,,validate_interfaces\n");
        assert_eq!(
            f.section("s").list("hooks", &[]),
            vec!["ramdisk_error", "scheduler", "validate_interfaces"]
        );
        assert_eq!(f.section("s").list("none", &["a"]), vec!["a"]);
    }

    #[test]
    fn missing_file_and_required_option() {
        let e = IniFile::load(Path::new("/nonexistent/discoverd.conf"))
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.starts_with("failed to read config file /nonexistent/discoverd.conf")));
        let f = file("[discoverd]\n");
        let e = f
            .section("discoverd")
            .required("database")
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("/etc/test.conf: [discoverd] database is required but not set")
        );
    }
}
