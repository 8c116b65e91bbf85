/*
 * The acceleration probe's guest: a 512-byte boot sector that walks through the CPU modes a
 * real guest's boot loader and kernel use, then tells QEMU it got there.
 *
 * A guest that only runs real-mode code passes under KVM on hosts where real guests then stop
 * with "KVM internal error. Suberror: 1 ... emulation failure" inside SYSLINUX (see
 * docs/testing.md). SYSLINUX switches between protected and real mode with 4 GiB segment
 * limits left in place ("unreal" mode) for its BIOS calls; kernels then enter long mode with
 * paging. This guest does the same:
 *
 *   real mode -> 32-bit protected mode -> 16-bit protected mode -> unreal mode (32-bit
 *   addresses above 1 MiB, string copies) -> 32-bit protected mode -> PAE paging and long mode
 *   (EFER.LME through WRMSR) -> a 64-bit store and load through the page tables
 *   -> write 0x2a to QEMU's isa-debug-exit port 0xf4 (QEMU exits with status 85).
 *
 * Any failure on the way either hangs, pauses the guest (KVM internal error) or resets it
 * (-no-reboot makes QEMU exit with status 0): only a guest that ran every step gives 85.
 *
 * Build (the test `probe_guest_matches_its_source` checks probe-guest.bin is this):
 *   as --32 -o probe.o probe-guest.S
 *   ld -m elf_i386 -Ttext=0x7c00 --oformat=binary -o probe-guest.bin probe.o
 */
        .intel_syntax noprefix
        .code16
        .globl _start
_start:
        cli
        xor     ax, ax
        mov     ds, ax
        mov     es, ax
        mov     ss, ax
        mov     sp, 0x7c00
        lgdt    [gdt_descriptor]

        /* Real mode to 32-bit protected mode. */
        mov     eax, cr0
        or      al, 1
        mov     cr0, eax
        ljmp    0x08, offset protected32

        .code32
protected32:
        mov     ax, 0x10
        mov     ds, ax
        mov     es, ax
        mov     ss, ax
        /* Back to real mode as SYSLINUX does for a BIOS call: via a 16-bit code segment. */
        ljmp    0x20, offset protected16

        .code16
protected16:
        mov     eax, cr0
        and     al, 0xfe
        mov     cr0, eax
        ljmp    0x0000, offset unreal

unreal:
        /* DS and ES keep their 4 GiB limits: 32-bit addresses work in real mode. */
        xor     ax, ax
        mov     ss, ax
        mov     esi, 0x100000
        mov     edi, 0x100004
        mov     dword ptr [esi], 0x5a5aa5a5
        mov     ecx, 1
        addr32 rep movsd
        cmp     dword ptr [esi], 0x5a5aa5a5
        jne     stuck

        /* Protected mode again, then long mode. */
        mov     eax, cr0
        or      al, 1
        mov     cr0, eax
        ljmp    0x08, offset paging

        .code32
paging:
        mov     ax, 0x10
        mov     ds, ax
        mov     es, ax
        mov     ss, ax
        /* Identity-map the first 2 MiB: PML4 at 0x1000, PDPT at 0x2000, PD at 0x3000. */
        mov     edi, 0x1000
        xor     eax, eax
        mov     ecx, 3 * 1024
        rep stosd
        mov     dword ptr [0x1000], 0x2003
        mov     dword ptr [0x2000], 0x3003
        mov     dword ptr [0x3000], 0x83
        mov     eax, cr4
        or      eax, 0x20
        mov     cr4, eax
        mov     eax, 0x1000
        mov     cr3, eax
        mov     ecx, 0xc0000080
        rdmsr
        or      eax, 0x100
        wrmsr
        mov     eax, cr0
        or      eax, 0x80000000
        mov     cr0, eax
        ljmp    0x18, offset long64

        .code64
long64:
        movabs  rax, 0x1122334455667788
        mov     qword ptr [0x5000], rax
        cmp     qword ptr [0x5000], rax
        jne     stuck
        mov     al, 0x2a
        out     0xf4, al
stuck:
        cli
        hlt
        jmp     stuck

        .p2align 3
gdt:
        .quad   0
        .quad   0x00cf9a000000ffff      /* 0x08: 32-bit code, 4 GiB */
        .quad   0x00cf92000000ffff      /* 0x10: data, 4 GiB */
        .quad   0x00af9a000000ffff      /* 0x18: 64-bit code */
        .quad   0x00009a000000ffff      /* 0x20: 16-bit code, 64 KiB */
gdt_end:
gdt_descriptor:
        .word   gdt_end - gdt - 1
        .long   gdt

        .org    510
        .byte   0x55, 0xaa
