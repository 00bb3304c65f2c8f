//! Reads a machine's files through a root directory, following symlinks as if that directory were `/`.
//!
//! `sendan-agent facts --root DIR` and the fixture tests point [`Root`] at a copy of a machine's `/sys`, `/proc`,
//! `/dev/disk/by-id` and `/etc`. sysfs is a forest of relative symlinks (`/sys/block/sda -> ../devices/…`,
//! `device -> ../../../0:0:0:0`), so paths are resolved one component at a time: an absolute link target starts
//! again at the root directory and `..` never climbs above it, exactly as the kernel treats `/`. A fixture, or a
//! mounted disk image, can therefore never make the agent read a file of the machine it runs on.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use super::FactsError;

/// The kernel's own limit (`MAXSYMLINKS`); a longer chain is a loop.
const MAX_SYMLINKS: usize = 40;

/// A directory standing in for `/`.
#[derive(Debug)]
pub(crate) struct Root {
    dir: PathBuf,
}

/// One step of a path walk inside the root.
enum Step {
    Root,
    Parent,
    Name(OsString),
}

fn steps(path: &Path) -> Vec<Step> {
    path.components()
        .filter_map(|c| match c {
            Component::Prefix(_) | Component::RootDir => Some(Step::Root),
            Component::CurDir => None,
            Component::ParentDir => Some(Step::Parent),
            Component::Normal(name) => Some(Step::Name(name.to_owned())),
        })
        .collect()
}

fn inside_path(inside: &[OsString]) -> PathBuf {
    let mut path = PathBuf::from("/");
    path.extend(inside);
    path
}

/// Errors by which the kernel says "this attribute is not available here" rather than "something broke":
/// the file is absent, root-only (`product_serial` read by an ordinary user), or refused with `EINVAL`
/// (`speed` and `carrier` of a link that is down), or the driver does not implement it.
fn unavailable(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::NotFound
            | io::ErrorKind::PermissionDenied
            | io::ErrorKind::InvalidInput
            | io::ErrorKind::Unsupported
    )
}

impl Root {
    pub(crate) fn new(dir: &Path) -> Self {
        Self { dir: dir.to_owned() }
    }

    /// The file on the host that `path` names before any symlink is followed; used to name files in errors.
    pub(crate) fn host_path(&self, path: &str) -> PathBuf {
        self.dir.join(path.trim_start_matches('/'))
    }

    fn host_of(&self, inside: &[OsString]) -> PathBuf {
        let mut host = self.dir.clone();
        host.extend(inside);
        host
    }

    /// Where `path` leads inside the root once every symlink is followed, as components below the root.
    fn walk(&self, path: &Path) -> io::Result<Vec<OsString>> {
        let mut inside: Vec<OsString> = Vec::new();
        let mut pending = steps(path);
        pending.reverse();
        let mut links = 0;
        while let Some(step) = pending.pop() {
            match step {
                Step::Root => inside.clear(),
                Step::Parent => {
                    inside.pop();
                }
                Step::Name(name) => {
                    let host = self.host_of(&inside).join(&name);
                    if fs::symlink_metadata(&host)?.file_type().is_symlink() {
                        links += 1;
                        if links > MAX_SYMLINKS {
                            return Err(io::Error::other("too many levels of symbolic links"));
                        }
                        let mut target = steps(&fs::read_link(&host)?);
                        target.reverse();
                        pending.extend(target);
                    } else {
                        inside.push(name);
                    }
                }
            }
        }
        Ok(inside)
    }

    /// The host path of the file `path` leads to, every symlink followed inside the root.
    fn resolve(&self, path: &str) -> io::Result<PathBuf> {
        Ok(self.host_of(&self.walk(Path::new(path))?))
    }

    /// Where `path` leads inside the root, as an absolute path that contains no symlink.
    pub(crate) fn canonical(&self, path: &str) -> Result<PathBuf, FactsError> {
        self.walk(Path::new(path)).map(|inside| inside_path(&inside)).map_err(|source| self.read_error(path, source))
    }

    /// Where a symlink found in directory `dir` (inside the root, without symlinks) points to, worked out from
    /// the link's text alone: the target need not exist, as `/dev/sda` does not in a fixture.
    pub(crate) fn lexical_target(dir: &Path, target: &Path) -> PathBuf {
        let mut inside: Vec<OsString> = Vec::new();
        for step in steps(dir).into_iter().chain(steps(target)) {
            match step {
                Step::Root => inside.clear(),
                Step::Parent => {
                    inside.pop();
                }
                Step::Name(name) => inside.push(name),
            }
        }
        inside_path(&inside)
    }

    pub(crate) fn read_error(&self, path: &str, source: io::Error) -> FactsError {
        FactsError::Read { path: self.host_path(path), source }
    }

    pub(crate) fn malformed(&self, path: &str, why: impl Into<String>) -> FactsError {
        FactsError::Malformed { path: self.host_path(path), why: why.into() }
    }

    fn read_bytes(&self, path: &str) -> io::Result<Vec<u8>> {
        fs::read(self.resolve(path)?)
    }

    /// The text of a file that must be there, whitespace trimmed.
    pub(crate) fn required(&self, path: &str) -> Result<String, FactsError> {
        match self.read_bytes(path) {
            Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).trim().to_owned()),
            Err(source) => Err(self.read_error(path, source)),
        }
    }

    /// The raw content of an attribute the kernel may not provide; `None` when it is unavailable.
    pub(crate) fn optional_bytes(&self, path: &str) -> Result<Option<Vec<u8>>, FactsError> {
        match self.read_bytes(path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(source) if unavailable(&source) => Ok(None),
            Err(source) => Err(self.read_error(path, source)),
        }
    }

    /// The text of an attribute the kernel may not provide, whitespace trimmed; `None` when it is unavailable
    /// or empty.
    pub(crate) fn optional(&self, path: &str) -> Result<Option<String>, FactsError> {
        Ok(self
            .optional_bytes(path)?
            .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
            .filter(|text| !text.is_empty()))
    }

    /// Whether `path` leads to an existing file or directory; a dangling symlink does not.
    pub(crate) fn exists(&self, path: &str) -> Result<bool, FactsError> {
        match self.resolve(path) {
            Ok(_) => Ok(true),
            Err(source) if source.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(self.read_error(path, source)),
        }
    }

    /// The names in directory `path`, sorted; none when the directory does not exist.
    pub(crate) fn entries(&self, path: &str) -> Result<Vec<String>, FactsError> {
        let dir = match self.resolve(path) {
            Ok(dir) => dir,
            Err(source) if source.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(self.read_error(path, source)),
        };
        let mut names = BTreeSet::new();
        for entry in fs::read_dir(&dir).map_err(|source| self.read_error(path, source))? {
            let entry = entry.map_err(|source| self.read_error(path, source))?;
            names.insert(entry.file_name().to_string_lossy().into_owned());
        }
        Ok(names.into_iter().collect())
    }

    /// The text of symlink `path` itself, its directory resolved first; `None` when there is no such symlink.
    pub(crate) fn link_text(&self, path: &str) -> Result<Option<PathBuf>, FactsError> {
        let as_path = Path::new(path);
        let (Some(parent), Some(name)) = (as_path.parent(), as_path.file_name()) else {
            return Ok(None);
        };
        let parent = match self.walk(parent) {
            Ok(inside) => self.host_of(&inside),
            Err(source) if source.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(self.read_error(path, source)),
        };
        match fs::read_link(parent.join(name)) {
            Ok(target) => Ok(Some(target)),
            // `InvalidInput` is `EINVAL`: the file exists but is not a symlink.
            Err(source) if matches!(source.kind(), io::ErrorKind::NotFound | io::ErrorKind::InvalidInput) => Ok(None),
            Err(source) => Err(self.read_error(path, source)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("sys/devices/pci0/disk0")).unwrap();
        fs::create_dir_all(dir.path().join("sys/block")).unwrap();
        fs::create_dir_all(dir.path().join("etc")).unwrap();
        fs::write(dir.path().join("sys/devices/pci0/disk0/size"), "2048\n").unwrap();
        fs::write(dir.path().join("etc/hostname"), "inside\n").unwrap();
        dir
    }

    #[test]
    fn relative_links_are_followed_inside_the_root() {
        let dir = tree();
        symlink("../devices/pci0/disk0", dir.path().join("sys/block/sda")).unwrap();
        let root = Root::new(dir.path());
        assert_eq!(root.required("/sys/block/sda/size").unwrap(), "2048");
        assert_eq!(root.canonical("/sys/block/sda").unwrap(), Path::new("/sys/devices/pci0/disk0"));
    }

    #[test]
    fn absolute_links_start_again_at_the_root() {
        let dir = tree();
        // On the host, /etc/hostname is some other file (or none): the link must land on the root's copy.
        symlink("/etc/hostname", dir.path().join("sys/block/name")).unwrap();
        let root = Root::new(dir.path());
        assert_eq!(root.required("/sys/block/name").unwrap(), "inside");
    }

    #[test]
    fn dot_dot_never_climbs_above_the_root() {
        let dir = tree();
        symlink("../../../../../../../../etc/hostname", dir.path().join("sys/block/up")).unwrap();
        let root = Root::new(dir.path());
        assert_eq!(root.required("/sys/block/up").unwrap(), "inside");
        assert_eq!(root.required("/../../etc/hostname").unwrap(), "inside");
    }

    #[test]
    fn a_symlink_loop_is_an_error_not_a_hang() {
        let dir = tree();
        symlink("b", dir.path().join("etc/a")).unwrap();
        symlink("a", dir.path().join("etc/b")).unwrap();
        let root = Root::new(dir.path());
        let error = root.required("/etc/a").unwrap_err();
        assert!(matches!(&error, FactsError::Read { path, .. } if path == &dir.path().join("etc/a")), "{error:?}");
    }

    #[test]
    fn missing_and_dangling_paths_are_unavailable_not_errors() {
        let dir = tree();
        symlink("../devices/gone", dir.path().join("sys/block/sdz")).unwrap();
        let root = Root::new(dir.path());
        assert_eq!(root.optional("/sys/block/sdz/size").unwrap(), None);
        assert!(!root.exists("/sys/block/sdz").unwrap());
        assert!(root.entries("/no/such/dir").unwrap().is_empty());
        assert!(matches!(root.required("/sys/block/sdz/size"), Err(FactsError::Read { .. })));
    }

    #[test]
    fn link_text_is_read_without_following_the_link() {
        let dir = tree();
        symlink("../../bus/pci/drivers/mlx5_core", dir.path().join("sys/devices/pci0/disk0/driver")).unwrap();
        symlink("../devices/pci0/disk0", dir.path().join("sys/block/sda")).unwrap();
        let root = Root::new(dir.path());
        assert_eq!(
            root.link_text("/sys/block/sda/driver").unwrap(),
            Some(PathBuf::from("../../bus/pci/drivers/mlx5_core"))
        );
        assert_eq!(root.link_text("/sys/block/sda/size").unwrap(), None, "a regular file is not a link");
        assert_eq!(root.link_text("/sys/block/sdb/driver").unwrap(), None);
    }

    #[test]
    fn refusals_are_unavailable_but_failures_are_not() {
        // The errno values sysfs returns: EACCES (root-only DMI), EINVAL (`speed` of a down link), ENOENT.
        for errno in [13, 22, 2] {
            assert!(unavailable(&io::Error::from_raw_os_error(errno)), "errno {errno}");
        }
        // EIO (a failing device) is a failure to report, not a missing attribute.
        assert!(!unavailable(&io::Error::from_raw_os_error(5)));
    }

    #[test]
    fn lexical_targets_are_clamped_at_the_root() {
        let by_id = Path::new("/dev/disk/by-id");
        assert_eq!(Root::lexical_target(by_id, Path::new("../../sda")), Path::new("/dev/sda"));
        assert_eq!(Root::lexical_target(by_id, Path::new("/dev/nvme0n1")), Path::new("/dev/nvme0n1"));
        assert_eq!(Root::lexical_target(by_id, Path::new("../../../../../sda")), Path::new("/sda"));
    }
}
