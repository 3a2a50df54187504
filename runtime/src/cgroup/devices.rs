//! Device access control: which device nodes a container may create (`mknod`), read and write.
//!
//! Capabilities do not guard devices: with `CAP_MKNOD`, one of docker's defaults, a process can
//! make a node for any major:minor and open it (`/dev/kvm`, the host's consoles, its hardware
//! random generator...). Like runc and crun, berth denies every device but a standard set:
//!
//! | rule | devices |
//! |---|---|
//! | `c *:* m`, `b *:* m` | make any node (opening it is still refused) |
//! | `c 1:3`, `1:5`, `1:7`, `1:8`, `1:9` `rwm` | null, zero, full, random, urandom |
//! | `c 5:0`, `5:1`, `5:2` `rwm` | tty, console, ptmx |
//! | `c 136:* rwm` | the container's pseudo-terminals |
//!
//! cgroup v1 enforces it in the `devices` hierarchy (`a` to `devices.deny`, then one rule per
//! write to `devices.allow`); cgroup v2 has no such files and runs an eBPF program of type
//! `BPF_PROG_TYPE_CGROUP_DEVICE` attached to the container's cgroup ([`program`], loaded and
//! attached by a [`DeviceFilter`]). Privileged containers ([`Devices::All`]) get neither.

use std::fmt;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

/// Which devices a container may use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Devices {
    /// Only [`standard_rules`]: what every unprivileged container gets.
    #[default]
    Standard,
    /// Every device, as the host allows it (privileged containers).
    All,
}

impl Devices {
    /// The allow list to enforce; `None` for no restriction.
    pub fn rules(self) -> Option<Vec<DeviceRule>> {
        match self {
            Devices::Standard => Some(standard_rules()),
            Devices::All => None,
        }
    }
}

/// Character or block device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    Char,
    Block,
}

/// What may be done with a device: any of mknod, read, write (`m`, `r`, `w` in v1's notation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    pub mknod: bool,
    pub read: bool,
    pub write: bool,
}

impl Access {
    pub const MKNOD: Access = Access {
        mknod: true,
        read: false,
        write: false,
    };
    pub const ALL: Access = Access {
        mknod: true,
        read: true,
        write: true,
    };

    /// The kernel's `BPF_DEVCG_ACC_*` bits.
    fn bits(self) -> i32 {
        [
            (self.mknod, BPF_DEVCG_ACC_MKNOD),
            (self.read, BPF_DEVCG_ACC_READ),
            (self.write, BPF_DEVCG_ACC_WRITE),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .fold(0, |bits, (_, bit)| bits | bit)
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (on, letter) in [(self.read, 'r'), (self.write, 'w'), (self.mknod, 'm')] {
            if on {
                write!(f, "{letter}")?;
            }
        }
        Ok(())
    }
}

/// One allowed device class; `None` numbers match any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceRule {
    pub kind: DeviceKind,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: Access,
}

impl DeviceRule {
    const fn char(major: u32, minor: Option<u32>, access: Access) -> Self {
        Self {
            kind: DeviceKind::Char,
            major: Some(major),
            minor,
            access,
        }
    }
}

/// The rule in v1's `devices.allow` syntax: `c 1:3 rwm`, `b *:* m`.
impl fmt::Display for DeviceRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            DeviceKind::Char => 'c',
            DeviceKind::Block => 'b',
        };
        let number = |n: Option<u32>| n.map_or_else(|| "*".to_owned(), |n| n.to_string());
        write!(
            f,
            "{kind} {}:{} {}",
            number(self.major),
            number(self.minor),
            self.access
        )
    }
}

/// The devices every container may use (runc's and crun's default list).
pub fn standard_rules() -> Vec<DeviceRule> {
    let any = |kind| DeviceRule {
        kind,
        major: None,
        minor: None,
        access: Access::MKNOD,
    };
    let mut rules = vec![any(DeviceKind::Char), any(DeviceKind::Block)];
    for (major, minor) in [
        (1, 3),
        (1, 5),
        (1, 7),
        (1, 8),
        (1, 9),
        (5, 0),
        (5, 1),
        (5, 2),
    ] {
        rules.push(DeviceRule::char(major, Some(minor), Access::ALL));
    }
    rules.push(DeviceRule::char(136, None, Access::ALL));
    rules
}

// The eBPF program: `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }` in
// r1, where access_type is `access << 16 | type`; returns 1 to allow, 0 to deny.
const BPF_DEVCG_ACC_MKNOD: i32 = 1;
const BPF_DEVCG_ACC_READ: i32 = 2;
const BPF_DEVCG_ACC_WRITE: i32 = 4;
const BPF_DEVCG_DEV_BLOCK: i32 = 1;
const BPF_DEVCG_DEV_CHAR: i32 = 2;

const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const MOV64_IMM: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const MOV64_REG: u8 = 0xbf; // BPF_ALU64 | BPF_MOV | BPF_X
const AND64_IMM: u8 = 0x57; // BPF_ALU64 | BPF_AND | BPF_K
const RSH64_IMM: u8 = 0x77; // BPF_ALU64 | BPF_RSH | BPF_K
const JNE_IMM: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

const R0: u8 = 0;
const R1: u8 = 1;
/// Device type.
const R2: u8 = 2;
/// Requested access bits.
const R3: u8 = 3;
const R4_MAJOR: u8 = 4;
const R5_MINOR: u8 = 5;

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BpfInsn {
    pub code: u8,
    /// Destination register in the low nibble, source in the high one.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> BpfInsn {
    BpfInsn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

/// The `BPF_PROG_TYPE_CGROUP_DEVICE` program that allows exactly `rules`: one block per rule
/// whose checks jump past it on a mismatch and whose end returns 1; falling off the last block
/// returns 0.
pub fn program(rules: &[DeviceRule]) -> Vec<BpfInsn> {
    let mut prog = vec![
        insn(LDX_MEM_W, R2, R1, 0, 0),
        insn(MOV64_REG, R3, R2, 0, 0),
        insn(AND64_IMM, R2, 0, 0, 0xffff),
        insn(RSH64_IMM, R3, 0, 0, 16),
        insn(LDX_MEM_W, R4_MAJOR, R1, 4, 0),
        insn(LDX_MEM_W, R5_MINOR, R1, 8, 0),
    ];
    for rule in rules {
        // Jumps are emitted with offset 0 and pointed past the block once its length is known.
        let mut block = Vec::with_capacity(8);
        let kind = match rule.kind {
            DeviceKind::Char => BPF_DEVCG_DEV_CHAR,
            DeviceKind::Block => BPF_DEVCG_DEV_BLOCK,
        };
        block.push(insn(JNE_IMM, R2, 0, 0, kind));
        let denied = !rule.access.bits() & Access::ALL.bits();
        if denied != 0 {
            // Any requested bit outside the rule's access: not this rule.
            block.push(insn(MOV64_REG, R1, R3, 0, 0));
            block.push(insn(AND64_IMM, R1, 0, 0, denied));
            block.push(insn(JNE_IMM, R1, 0, 0, 0));
        }
        for (register, number) in [(R4_MAJOR, rule.major), (R5_MINOR, rule.minor)] {
            if let Some(number) = number {
                // Device numbers fit: majors are 12 bits, minors 20.
                block.push(insn(JNE_IMM, register, 0, 0, number as i32));
            }
        }
        block.push(insn(MOV64_IMM, R0, 0, 0, 1));
        block.push(insn(EXIT, 0, 0, 0, 0));
        let len = block.len();
        for (i, instruction) in block.iter_mut().enumerate() {
            if instruction.code == JNE_IMM {
                instruction.off = (len - i - 1) as i16;
            }
        }
        prog.extend(block);
    }
    prog.push(insn(MOV64_IMM, R0, 0, 0, 0));
    prog.push(insn(EXIT, 0, 0, 0, 0));
    prog
}

/// Why a v2 device filter could not be put in place.
#[derive(Debug, thiserror::Error)]
pub enum DeviceFilterError {
    #[error("load the device filter program: {errno}{}", verifier_note(.log))]
    Load { errno: Errno, log: String },
    #[error("open cgroup {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("query the device programs of cgroup {path}")]
    Query {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("attach the device filter to cgroup {path}")]
    Attach {
        path: PathBuf,
        #[source]
        source: Errno,
    },
}

fn verifier_note(log: &str) -> String {
    let log = log.trim();
    if log.is_empty() {
        String::new()
    } else {
        format!(" (verifier: {log})")
    }
}

/// Puts a device allow list in force on a cgroup v2 directory. [`LinuxDeviceFilter`] loads and
/// attaches [`program`]; tests against a fake cgroupfs use a recording double
/// (`cgroup::testing::RecordingDeviceFilter`).
pub trait DeviceFilter: Send + Sync + fmt::Debug {
    /// Allow only `rules` to the processes of `cgroup_dir`. A cgroup that already has a device
    /// program of its own keeps it (a repeated `create`).
    fn attach(&self, cgroup_dir: &Path, rules: &[DeviceRule]) -> Result<(), DeviceFilterError>;
}

/// The kernel's eBPF device filter, through the `bpf(2)` syscall.
#[derive(Debug, Clone, Copy, Default)]
pub struct LinuxDeviceFilter;

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
/// Several programs may be attached along the hierarchy and all must allow: berth's can only
/// narrow what an ancestor's (systemd's, say) allows, and an ancestor's never blocks the attach.
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The `BPF_PROG_LOAD` part of `union bpf_attr`, up to the fields berth sets; the kernel zeroes
/// the rest.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

/// The `BPF_PROG_ATTACH` part of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// The `BPF_PROG_QUERY` part of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct ProgQueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> Result<libc::c_long, Errno> {
    // SAFETY: `attr` is a properly initialised repr(C) prefix of `union bpf_attr` for `cmd`,
    // and its size is passed along, so the kernel reads no further; pointers inside it (the
    // instructions, license and log buffer) outlive the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    Errno::result(rc)
}

fn load(prog: &[BpfInsn]) -> Result<OwnedFd, DeviceFilterError> {
    const LICENSE: &[u8] = b"Apache-2.0\0";
    let mut name = [0u8; 16];
    name[..13].copy_from_slice(b"berth_devices");
    let attr = |log: &mut [u8]| ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: LICENSE.as_ptr() as u64,
        log_level: u32::from(!log.is_empty()),
        log_size: log.len() as u32,
        log_buf: if log.is_empty() {
            0
        } else {
            log.as_mut_ptr() as u64
        },
        prog_name: name,
        ..Default::default()
    };
    match bpf(BPF_PROG_LOAD, &mut attr(&mut [])) {
        // SAFETY: a successful BPF_PROG_LOAD returns a new descriptor that nothing else owns.
        Ok(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) }),
        Err(errno) => {
            // Load again with the verifier's log, for the error message only.
            let mut log = vec![0u8; 4096];
            let _ = bpf(BPF_PROG_LOAD, &mut attr(&mut log)).map(|fd| {
                // SAFETY: as above; this second program is dropped at once.
                drop(unsafe { OwnedFd::from_raw_fd(fd as i32) })
            });
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            Err(DeviceFilterError::Load {
                errno,
                log: String::from_utf8_lossy(&log[..end]).into_owned(),
            })
        }
    }
}

impl DeviceFilter for LinuxDeviceFilter {
    fn attach(&self, cgroup_dir: &Path, rules: &[DeviceRule]) -> Result<(), DeviceFilterError> {
        let cgroup = nix::fcntl::open(
            cgroup_dir,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|source| DeviceFilterError::Open {
            path: cgroup_dir.to_path_buf(),
            source,
        })?;
        // Without prog_ids the kernel only reports how many programs this cgroup has itself.
        let mut query = ProgQueryAttr {
            target_fd: cgroup.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            ..Default::default()
        };
        bpf(BPF_PROG_QUERY, &mut query).map_err(|source| DeviceFilterError::Query {
            path: cgroup_dir.to_path_buf(),
            source,
        })?;
        if query.prog_cnt > 0 {
            return Ok(());
        }
        let prog = load(&program(rules))?;
        let mut attr = ProgAttachAttr {
            target_fd: cgroup.as_raw_fd() as u32,
            attach_bpf_fd: prog.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            attach_flags: BPF_F_ALLOW_MULTI,
            ..Default::default()
        };
        // The cgroup holds the program from here on; it goes with the cgroup's rmdir.
        bpf(BPF_PROG_ATTACH, &mut attr)
            .map(drop)
            .map_err(|source| DeviceFilterError::Attach {
                path: cgroup_dir.to_path_buf(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_rules_read_like_runc_s_device_list() {
        let lines: Vec<String> = standard_rules().iter().map(|r| r.to_string()).collect();
        assert_eq!(
            lines,
            [
                "c *:* m",
                "b *:* m",
                "c 1:3 rwm",
                "c 1:5 rwm",
                "c 1:7 rwm",
                "c 1:8 rwm",
                "c 1:9 rwm",
                "c 5:0 rwm",
                "c 5:1 rwm",
                "c 5:2 rwm",
                "c 136:* rwm",
            ]
        );
        assert_eq!(Devices::All.rules(), None);
        assert_eq!(Devices::default(), Devices::Standard);
    }

    /// Runs the program the way the kernel would, over the subset of eBPF it uses, so its
    /// decisions are checked without root (the root tests load it for real).
    fn run(prog: &[BpfInsn], kind: i32, access: i32, major: u32, minor: u32) -> u64 {
        let ctx = [((access << 16) | kind) as u32, major, minor];
        let mut regs = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_MEM_W => {
                    assert_eq!(src, R1 as usize, "loads come from the context");
                    regs[dst] = u64::from(ctx[(i.off / 4) as usize]);
                }
                MOV64_IMM => regs[dst] = i.imm as i64 as u64,
                MOV64_REG => regs[dst] = regs[src],
                AND64_IMM => regs[dst] &= i.imm as i64 as u64,
                RSH64_IMM => regs[dst] >>= i.imm,
                JNE_IMM => {
                    if regs[dst] != i.imm as i64 as u64 {
                        pc += i.off as usize;
                    }
                }
                EXIT => return regs[0],
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    #[test]
    fn the_program_allows_exactly_the_standard_rules() {
        let prog = program(&standard_rules());
        let (c, b) = (BPF_DEVCG_DEV_CHAR, BPF_DEVCG_DEV_BLOCK);
        let (m, r, w) = (BPF_DEVCG_ACC_MKNOD, BPF_DEVCG_ACC_READ, BPF_DEVCG_ACC_WRITE);
        // /dev/null read and write, /dev/urandom, a pseudo-terminal, /dev/ptmx.
        assert_eq!(run(&prog, c, r | w, 1, 3), 1);
        assert_eq!(run(&prog, c, r, 1, 9), 1);
        assert_eq!(run(&prog, c, r | w, 136, 7), 1);
        assert_eq!(run(&prog, c, r | w, 5, 2), 1);
        // Any node may be made...
        assert_eq!(run(&prog, c, m, 10, 232), 1);
        assert_eq!(run(&prog, b, m, 8, 0), 1);
        // ...but not opened: /dev/kvm, /dev/kmsg, a disk, a host console.
        assert_eq!(run(&prog, c, r | w, 10, 232), 0);
        assert_eq!(run(&prog, c, w, 1, 11), 0);
        assert_eq!(run(&prog, b, r, 8, 0), 0);
        assert_eq!(run(&prog, c, w, 4, 1), 0);
        // Block 1:3 is not char 1:3.
        assert_eq!(run(&prog, b, r, 1, 3), 0);
        assert_eq!(
            run(&program(&[]), c, r, 1, 3),
            0,
            "an empty list denies all"
        );
    }
}
