//! berth's default seccomp filter: a deny list in the spirit of docker's default profile. It
//! refuses (EPERM) what a container has no business doing even as root in its namespaces:
//! loading kernels and modules, keyrings, BPF, perf, userfaultfd, io_uring, new mounts and
//! namespaces (notably user namespaces, which capabilities do not guard), clock and swap
//! control; `clone3` gets ENOSYS so libc falls back to `clone`, whose namespace flags are
//! checked. Other architectures than x86_64 are killed (no x32 or i386 entry points around the
//! list).
//!
//! The program is plain classic BPF built here; installing it is a [`crate::syscall::Syscall`]
//! call.

/// Syscalls refused with EPERM.
#[cfg(target_arch = "x86_64")]
const DENIED: &[libc::c_long] = &[
    libc::SYS_acct,
    libc::SYS_add_key,
    libc::SYS_bpf,
    libc::SYS_clock_adjtime,
    libc::SYS_clock_settime,
    libc::SYS_delete_module,
    libc::SYS_finit_module,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fsopen,
    libc::SYS_fspick,
    libc::SYS_init_module,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_io_uring_setup,
    libc::SYS_ioperm,
    libc::SYS_iopl,
    libc::SYS_kexec_file_load,
    libc::SYS_kexec_load,
    libc::SYS_keyctl,
    libc::SYS_lookup_dcookie,
    libc::SYS_mount,
    libc::SYS_mount_setattr,
    libc::SYS_move_mount,
    libc::SYS_name_to_handle_at,
    libc::SYS_open_by_handle_at,
    libc::SYS_open_tree,
    libc::SYS_perf_event_open,
    libc::SYS_pivot_root,
    libc::SYS_quotactl,
    libc::SYS_reboot,
    libc::SYS_request_key,
    libc::SYS_setns,
    libc::SYS_settimeofday,
    libc::SYS_swapoff,
    libc::SYS_swapon,
    libc::SYS_syslog,
    libc::SYS_umount2,
    libc::SYS_unshare,
    libc::SYS_userfaultfd,
    libc::SYS_vhangup,
];

/// Namespace flags `clone` may not carry.
const NAMESPACE_FLAGS: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u32;

const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
/// Syscall numbers with this bit are the x32 ABI.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

// Offsets in `struct seccomp_data`.
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;
const OFFSET_ARG0_LOW: u32 = 16;

fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

const LOAD: u32 = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
const RET: u32 = libc::BPF_RET | libc::BPF_K;
const JEQ: u32 = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
const JGE: u32 = libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K;
const JSET: u32 = libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K;

/// Where a decision-tree node jumps.
#[derive(Debug, Clone, Copy)]
enum Target {
    Next,
    /// Index in the tree.
    At(usize),
    Allow,
    Deny,
}

#[derive(Debug, Clone, Copy)]
struct Node {
    code: u32,
    k: u32,
    jt: Target,
    jf: Target,
}

/// A binary search over the sorted syscall numbers `denied`: `JGE` splits down to runs of a
/// few `JEQ`s. The kernel runs a new filter once per syscall number and architecture to build
/// its action cache when the filter is installed, so the path length of the common case (a
/// number not in the list) is what installing costs: a linear list of 41 comparisons made
/// that ~0.35 ms here, a tree of depth ~4 a fraction of it. Containers' syscalls the cache
/// does not settle walk the shorter path too.
fn search_tree(denied: &[u32], out: &mut Vec<Node>) {
    const RUN: usize = 4;
    if denied.len() <= RUN {
        for (i, nr) in denied.iter().enumerate() {
            let last = i + 1 == denied.len();
            out.push(Node {
                code: JEQ,
                k: *nr,
                jt: Target::Deny,
                jf: if last { Target::Allow } else { Target::Next },
            });
        }
        if denied.is_empty() {
            // An empty run allows: jump straight there.
            out.push(Node {
                code: JGE,
                k: 0,
                jt: Target::Allow,
                jf: Target::Allow,
            });
        }
        return;
    }
    let mid = denied.len() / 2;
    let split = out.len();
    out.push(Node {
        code: JGE,
        k: denied[mid],
        jt: Target::Next, // set below, once the lower half is laid out
        jf: Target::Next,
    });
    search_tree(&denied[..mid], out);
    out[split].jt = Target::At(out.len());
    search_tree(&denied[mid..], out);
}

/// The default filter, or `None` on architectures it does not cover.
pub fn default_filter() -> Option<Vec<libc::sock_filter>> {
    #[cfg(target_arch = "x86_64")]
    {
        let errno = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
        let enosys = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
        let mut program = vec![
            stmt(LOAD, OFFSET_ARCH),
            jump(JEQ, AUDIT_ARCH_X86_64, 1, 0),
            stmt(RET, libc::SECCOMP_RET_KILL_PROCESS),
            stmt(LOAD, OFFSET_NR),
            // x32 entry points: refuse them all.
            jump(JGE, X32_SYSCALL_BIT, 0, 1),
            stmt(RET, errno),
            jump(JEQ, libc::SYS_clone3 as u32, 0, 1),
            stmt(RET, enosys),
            // clone: look at the flags (first argument).
            jump(JEQ, libc::SYS_clone as u32, 0, 3),
            stmt(LOAD, OFFSET_ARG0_LOW),
            jump(JSET, NAMESPACE_FLAGS, 0, 1),
            stmt(RET, errno),
        ];
        // The accumulator may hold the clone flags here; reload the number.
        program.push(stmt(LOAD, OFFSET_NR));
        let mut denied: Vec<u32> = DENIED.iter().map(|nr| *nr as u32).collect();
        denied.sort_unstable();
        denied.dedup();
        let mut tree = Vec::new();
        search_tree(&denied, &mut tree);
        let start = program.len();
        let allow = start + tree.len();
        for (i, node) in tree.into_iter().enumerate() {
            let at = start + i;
            let offset = |target: Target| -> u8 {
                let to = match target {
                    Target::Next => at + 1,
                    Target::At(index) => start + index,
                    Target::Allow => allow,
                    Target::Deny => allow + 1,
                };
                // Forward jumps only, and short ones: the tree holds a few dozen nodes.
                (to - at - 1) as u8
            };
            program.push(jump(node.code, node.k, offset(node.jt), offset(node.jf)));
        }
        program.push(stmt(RET, libc::SECCOMP_RET_ALLOW));
        program.push(stmt(RET, errno));
        Some(program)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// A tiny classic-BPF interpreter for the instructions the filter uses.
    fn run(program: &[libc::sock_filter], arch: u32, nr: u32, arg0: u32) -> u32 {
        let mut acc = 0u32;
        let mut pc = 0usize;
        loop {
            let ins = program[pc];
            let code = ins.code as u32;
            pc += 1;
            match code {
                LOAD => {
                    acc = match ins.k {
                        OFFSET_NR => nr,
                        OFFSET_ARCH => arch,
                        OFFSET_ARG0_LOW => arg0,
                        other => panic!("load of offset {other}"),
                    }
                }
                RET => return ins.k,
                JEQ | JGE | JSET => {
                    let taken = match code {
                        JEQ => acc == ins.k,
                        JGE => acc >= ins.k,
                        _ => acc & ins.k != 0,
                    };
                    pc += if taken { ins.jt } else { ins.jf } as usize;
                }
                other => panic!("unexpected instruction {other:#x}"),
            }
        }
    }

    #[test]
    fn denies_the_list_allows_the_rest_and_guards_clone() {
        let program = default_filter().unwrap();
        assert!(program.len() < 4096);
        let eperm = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
        let call = |nr: libc::c_long, arg0: u32| run(&program, AUDIT_ARCH_X86_64, nr as u32, arg0);
        for nr in DENIED {
            assert_eq!(call(*nr, 0), eperm, "syscall {nr}");
        }
        for nr in [
            libc::SYS_read,
            libc::SYS_write,
            libc::SYS_execve,
            libc::SYS_openat,
            libc::SYS_sethostname,
        ] {
            assert_eq!(call(nr, 0), libc::SECCOMP_RET_ALLOW, "syscall {nr}");
        }
        let fork_flags =
            (libc::CLONE_CHILD_SETTID | libc::CLONE_CHILD_CLEARTID | libc::SIGCHLD) as u32;
        assert_eq!(call(libc::SYS_clone, fork_flags), libc::SECCOMP_RET_ALLOW);
        assert_eq!(
            call(libc::SYS_clone, fork_flags | libc::CLONE_NEWUSER as u32),
            eperm
        );
        assert_eq!(
            call(libc::SYS_clone3, 0),
            libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32
        );
        assert_eq!(call(libc::SYS_read | 0x4000_0000, 0), eperm, "x32");
        // Every syscall number of the architecture: denied exactly when listed.
        for nr in 0..1024u32 {
            let expected = if DENIED.contains(&(nr as libc::c_long)) {
                eperm
            } else if nr == libc::SYS_clone3 as u32 {
                libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32
            } else {
                libc::SECCOMP_RET_ALLOW
            };
            assert_eq!(
                run(&program, AUDIT_ARCH_X86_64, nr, 0),
                expected,
                "syscall {nr}"
            );
        }
        // The common case (a number not listed) takes a short path.
        let steps = |nr: u32| {
            let mut count = 0;
            let mut pc = 0usize;
            let mut acc = nr;
            loop {
                let ins = program[pc];
                count += 1;
                pc += 1;
                match ins.code as u32 {
                    LOAD => {
                        acc = if ins.k == OFFSET_ARCH {
                            AUDIT_ARCH_X86_64
                        } else {
                            nr
                        }
                    }
                    RET => return count,
                    JEQ => pc += if acc == ins.k { ins.jt } else { ins.jf } as usize,
                    JGE => pc += if acc >= ins.k { ins.jt } else { ins.jf } as usize,
                    _ => pc += ins.jf as usize,
                }
            }
        };
        assert!(
            steps(libc::SYS_read as u32) <= 16,
            "{}",
            steps(libc::SYS_read as u32)
        );
        assert_eq!(
            run(&program, 0x4000_0003, 3, 0),
            libc::SECCOMP_RET_KILL_PROCESS,
            "i386"
        );
    }
}
