//! Go release versions as the toolchain writes them (`go1.21.13`, `go1.26rc1`,
//! `devel go1.27-abc123 …`), parsed into a comparable [`GoVersion`].
//!
//! Layout decisions elsewhere in gostrings compare versions (`version >= GoVersion::new(1, 20, 0)`),
//! so the ordering matters: a release candidate or devel build of 1.26 sorts as 1.26.0.

use std::fmt;
use std::str::FromStr;

/// A Go release: `go1.21.13` is `{ major: 1, minor: 21, patch: 13 }`.
///
/// Pre-releases (`go1.26rc1`, `go1.26beta2`) and devel builds (`devel go1.27-abc`) parse to their
/// `.0` release; callers that need the exact text (buildinfo) keep the original string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GoVersion {
    /// Major version (1).
    pub major: u32,
    /// Minor version (21 for Go 1.21).
    pub minor: u32,
    /// Patch release (13 for go1.21.13; 0 for pre-releases and devel builds).
    pub patch: u32,
}

/// Why a version string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a Go version: {0:?} (expected something like go1.21.13)")]
pub struct VersionError(pub String);

impl GoVersion {
    /// A version from its parts.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        GoVersion {
            major,
            minor,
            patch,
        }
    }

    /// Parses `go1.21.13`, `go1.21`, `go1.26rc1`, `go1.26beta2`, `devel go1.27-abc …` and
    /// `go1.24.1 X:boringcrypto`. Leading/trailing whitespace is ignored.
    pub fn parse(s: &str) -> Result<Self, VersionError> {
        let err = || VersionError(s.chars().take(80).collect());
        let t = s.trim();
        let t = t.strip_prefix("devel ").unwrap_or(t).trim_start();
        let t = t.strip_prefix("go").ok_or_else(err)?;
        let mut nums = [0u32; 3];
        let mut count = 0;
        let mut rest = t;
        while count < 3 {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 || digits > 9 {
                return Err(err());
            }
            nums[count] = rest[..digits].parse().map_err(|_| err())?;
            count += 1;
            rest = &rest[digits..];
            match rest.strip_prefix('.') {
                Some(r) if r.starts_with(|c: char| c.is_ascii_digit()) => rest = r,
                _ => break,
            }
        }
        if count < 2 {
            return Err(err());
        }
        // What may follow the numbers: nothing, a pre-release tag, a devel hash, or build tags.
        let ok_tail = rest.is_empty()
            || rest.starts_with("rc")
            || rest.starts_with("beta")
            || rest.starts_with('-')
            || rest.starts_with(' ')
            || rest.starts_with('+');
        if !ok_tail {
            return Err(err());
        }
        Ok(GoVersion {
            major: nums[0],
            minor: nums[1],
            patch: nums[2],
        })
    }

    /// True when this version is at least `major.minor`.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

impl FromStr for GoVersion {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        GoVersion::parse(s)
    }
}

impl fmt::Display for GoVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "go{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_releases_prereleases_and_devel_builds() {
        assert_eq!(
            GoVersion::parse("go1.21.13").unwrap(),
            GoVersion::new(1, 21, 13)
        );
        assert_eq!(
            GoVersion::parse("go1.21").unwrap(),
            GoVersion::new(1, 21, 0)
        );
        assert_eq!(
            GoVersion::parse("go1.26rc1").unwrap(),
            GoVersion::new(1, 26, 0)
        );
        assert_eq!(
            GoVersion::parse("go1.22beta2").unwrap(),
            GoVersion::new(1, 22, 0)
        );
        assert_eq!(
            GoVersion::parse("devel go1.27-abc123 Tue Jan 1 00:00:00 2026 +0000").unwrap(),
            GoVersion::new(1, 27, 0)
        );
        assert_eq!(
            GoVersion::parse("go1.24.1 X:boringcrypto").unwrap(),
            GoVersion::new(1, 24, 1)
        );
    }

    #[test]
    fn rejects_non_versions() {
        for bad in [
            "",
            "go",
            "1.21.3",
            "gox",
            "go1",
            "go1.x",
            "go1.21.3junk",
            "go99999999999.1",
        ] {
            assert!(GoVersion::parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn orders_by_major_minor_patch() {
        let v = |s| GoVersion::parse(s).unwrap();
        assert!(v("go1.21.13") < v("go1.23.0"));
        assert!(v("go1.9.2") < v("go1.10"));
        assert!(v("go1.26rc1") < v("go1.26.1"));
        assert!(v("go1.27.4").at_least(1, 27));
        assert!(!v("go1.26.8").at_least(1, 27));
        assert_eq!(v("go1.21.13").to_string(), "go1.21.13");
    }
}
