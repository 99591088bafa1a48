//! The removable drives mounted on this machine (USB sticks, SD cards), for the operator's
//! page: it offers them for bundle export and import, and a drive is usable only where it is
//! mounted inside a bundle directory (`--bundle-dir`), as the bundle routes require. Read from
//! the kernel's mount table and `/sys/class/block` on each request, since sticks come and go.

use std::path::{Path, PathBuf};

/// The kernel's mount table of this process.
const MOUNTS: &str = "/proc/self/mounts";

/// Where the kernel describes block devices.
const SYS_BLOCK: &str = "/sys/class/block";

/// The mount points of removable drives, in the mount table's order.
pub fn removable() -> Vec<PathBuf> {
    let table = std::fs::read_to_string(MOUNTS).unwrap_or_default();
    mounts(&table)
        .into_iter()
        .filter(|(device, _)| is_removable(Path::new(SYS_BLOCK), device))
        .map(|(_, mount_point)| mount_point)
        .collect()
}

/// The block devices of a mount table and where each is mounted (`/dev/…` devices only).
fn mounts(table: &str) -> Vec<(PathBuf, PathBuf)> {
    table
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let device = fields.next()?;
            let mount_point = fields.next()?;
            device.starts_with("/dev/").then(|| {
                (
                    PathBuf::from(unescape(device)),
                    PathBuf::from(unescape(mount_point)),
                )
            })
        })
        .collect()
}

/// A mount table field with its octal escapes (`\040` for a space) read back.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|_| bytes[i] == b'\\')
            .and_then(|digits| std::str::from_utf8(digits).ok())
            .and_then(|digits| u8::from_str_radix(digits, 8).ok());
        match octal {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `device` (`/dev/sdb1`, or a `/dev/disk/by-…` link to it) is on a removable disk or
/// one on USB, as `sys_block` (`/sys/class/block`) tells.
fn is_removable(sys_block: &Path, device: &Path) -> bool {
    let device = device.canonicalize().unwrap_or_else(|_| device.to_owned());
    let Some(name) = device.file_name() else {
        return false;
    };
    let Ok(node) = sys_block.join(name).canonicalize() else {
        return false;
    };
    // A partition's disk is the directory above it.
    let disk = if node.join("partition").exists() {
        node.parent().map(Path::to_path_buf).unwrap_or(node)
    } else {
        node
    };
    let flagged = std::fs::read_to_string(disk.join("removable")).is_ok_and(|r| r.trim() == "1");
    // Many USB sticks call themselves fixed disks; their place in the device tree does not lie.
    flagged
        || disk
            .components()
            .any(|c| c.as_os_str().to_string_lossy().starts_with("usb"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mount_table_gives_devices_and_mount_points() {
        let table = "proc /proc proc rw 0 0\n\
                     /dev/mmcblk0p2 / ext4 rw 0 0\n\
                     /dev/sda1 /media/pi/MI\\040USB vfat rw 0 0\n\
                     tmpfs /run tmpfs rw 0 0\n";
        assert_eq!(
            mounts(table),
            [
                (PathBuf::from("/dev/mmcblk0p2"), PathBuf::from("/")),
                (
                    PathBuf::from("/dev/sda1"),
                    PathBuf::from("/media/pi/MI USB")
                ),
            ]
        );
        assert_eq!(unescape(r"a\134b\"), r"a\b\");
    }

    #[test]
    fn removable_disks_and_usb_ones_are_told_from_fixed_ones() {
        let sys = tempfile::tempdir().unwrap();
        let devices = sys.path().join("devices");
        let class = sys.path().join("class");
        std::fs::create_dir(&class).unwrap();
        let disk = |path: &str, removable: &str, partition: &str| {
            let disk = devices.join(path);
            let part = disk.join(partition);
            std::fs::create_dir_all(&part).unwrap();
            std::fs::write(disk.join("removable"), removable).unwrap();
            std::fs::write(part.join("partition"), "1").unwrap();
            std::os::unix::fs::symlink(&part, class.join(partition)).unwrap();
        };
        disk("pci0/mmc_host/mmcblk0", "0\n", "mmcblk0p2");
        disk("pci0/ata1/sdb", "1\n", "sdb1");
        disk("pci0/usb1/1-1/host0/sda", "0\n", "sda1");
        assert!(!is_removable(&class, Path::new("/dev/mmcblk0p2")));
        assert!(is_removable(&class, Path::new("/dev/sdb1")));
        assert!(is_removable(&class, Path::new("/dev/sda1")));
        assert!(!is_removable(&class, Path::new("/dev/nvme9n1")));
    }
}
