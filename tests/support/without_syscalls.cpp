// without_syscalls: runs a command on what looks like a kernel that lacks some system calls.
// Test-only: the end-to-end tests start the real agentlockd through it to exercise its fallbacks
// (no pidfd_open, no inotify) without a switch in the production command line.
//
//   without_syscalls NAME[,NAME]... -- COMMAND [ARG]...
//
// Each named call fails with ENOSYS in COMMAND and in every process it starts (a seccomp filter is
// inherited across fork and exec). Known names: pidfd_open, inotify_init, inotify_init1,
// inotify_add_watch. Exit status 2 for a usage error or a filter that cannot be installed, 127 when
// COMMAND cannot be executed; otherwise COMMAND replaces this process.

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <string>
#include <string_view>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <vector>

namespace {

#if defined(__x86_64__)
constexpr std::uint32_t k_audit_arch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
constexpr std::uint32_t k_audit_arch = AUDIT_ARCH_AARCH64;
#else
#error "without_syscalls: add this architecture's AUDIT_ARCH_* and syscall numbers"
#endif

struct KnownCall {
    std::string_view name;
    long number;
};

constexpr KnownCall k_known[] = {
    {"pidfd_open", __NR_pidfd_open},
#ifdef __NR_inotify_init // absent on architectures that have only inotify_init1
    {"inotify_init", __NR_inotify_init},
#endif
    {"inotify_init1", __NR_inotify_init1},
    {"inotify_add_watch", __NR_inotify_add_watch},
};

int usage(const std::string& why) {
    std::fprintf(stderr,
                 "without_syscalls: %s\n"
                 "usage: without_syscalls NAME[,NAME]... -- COMMAND [ARG]...\n"
                 "known names:",
                 why.c_str());
    for (const auto& call : k_known) {
        std::fprintf(stderr, " %.*s", static_cast<int>(call.name.size()), call.name.data());
    }
    std::fprintf(stderr, "\n");
    return 2;
}

sock_filter statement(std::uint32_t code, std::uint32_t k) {
    return sock_filter{static_cast<std::uint16_t>(code), 0, 0, k};
}

sock_filter jump_if_equal(std::uint32_t k, std::uint8_t if_true, std::uint8_t if_false) {
    return sock_filter{static_cast<std::uint16_t>(BPF_JMP | BPF_JEQ | BPF_K), if_true, if_false, k};
}

// The filter: a call from another ABI kills the process (its numbers mean other calls, so it
// could slip past the list); each listed call returns ENOSYS; everything else is allowed.
std::vector<sock_filter> build_filter(const std::vector<std::uint32_t>& numbers) {
    std::vector<sock_filter> f;
    f.push_back(statement(BPF_LD | BPF_W | BPF_ABS,
                          static_cast<std::uint32_t>(offsetof(seccomp_data, arch))));
    f.push_back(jump_if_equal(k_audit_arch, 1, 0));
    f.push_back(statement(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS));
    f.push_back(statement(BPF_LD | BPF_W | BPF_ABS,
                          static_cast<std::uint32_t>(offsetof(seccomp_data, nr))));
    for (std::size_t i = 0; i < numbers.size(); ++i) {
        // On a match, skip the comparisons still to come and the "allow": land on the ENOSYS.
        const auto skip = static_cast<std::uint8_t>(numbers.size() - i);
        f.push_back(jump_if_equal(numbers[i], skip, 0));
    }
    f.push_back(statement(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
    f.push_back(statement(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (static_cast<std::uint32_t>(ENOSYS) &
                                                                SECCOMP_RET_DATA)));
    return f;
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 4 || std::string_view(argv[2]) != "--") {
        return usage("expected a list of system calls, then --, then a command");
    }
    std::vector<std::uint32_t> numbers;
    std::string_view rest(argv[1]);
    while (!rest.empty()) {
        const auto comma = rest.find(',');
        const std::string_view name = rest.substr(0, comma);
        rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
        bool known = false;
        for (const auto& call : k_known) {
            if (call.name == name) {
                numbers.push_back(static_cast<std::uint32_t>(call.number));
#if defined(__x86_64__)
                // The same call through the x32 ABI (same arch, numbers with bit 30 set).
                numbers.push_back(static_cast<std::uint32_t>(call.number) | 0x40000000U);
#endif
                known = true;
            }
        }
        if (!known) {
            return usage("unknown system call \"" + std::string(name) + "\"");
        }
    }
    if (numbers.empty() || numbers.size() > 200) { // a BPF jump skips at most 255 instructions
        return usage("expected between one and a hundred system call names");
    }

    std::vector<sock_filter> filter = build_filter(numbers);
    sock_fprog program{static_cast<unsigned short>(filter.size()), filter.data()};
    // Without CAP_SYS_ADMIN a filter may only be installed under no_new_privs; it also keeps a
    // set-uid COMMAND from gaining privileges under a filter it did not expect.
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        const int saved = errno;
        std::fprintf(stderr, "without_syscalls: prctl PR_SET_NO_NEW_PRIVS: %s\n",
                     std::strerror(saved));
        return 2;
    }
    if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0U, &program) != 0) {
        const int saved = errno;
        // Kernels before 3.17 have no seccomp(2), only the prctl interface.
        if (saved != ENOSYS || ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0) {
            std::fprintf(stderr, "without_syscalls: seccomp SECCOMP_SET_MODE_FILTER: %s\n",
                         std::strerror(saved == ENOSYS ? errno : saved));
            return 2;
        }
    }
    ::execv(argv[3], argv + 3);
    const int saved = errno;
    std::fprintf(stderr, "without_syscalls: execv %s: %s\n", argv[3], std::strerror(saved));
    return 127;
}
