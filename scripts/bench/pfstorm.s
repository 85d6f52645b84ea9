# (c) Page-fault storm: ROUNDS times, mmap 16 MiB anonymous private memory, write one
# byte in each of its 4096 pages (one #PF each), munmap it.
        .globl _start
        .text
_start:
        mov     $ROUNDS, %r12
2:      mov     $9, %eax            # mmap(0, 16M, RW, PRIVATE|ANON, -1, 0)
        xor     %edi, %edi
        mov     $(16 << 20), %esi
        mov     $3, %edx
        mov     $0x22, %r10d
        mov     $-1, %r8
        xor     %r9d, %r9d
        syscall
        test    %rax, %rax
        js      9f
        mov     %rax, %rbx
        mov     %rax, %rdi
        mov     $4096, %ecx
1:      movb    $1, (%rdi)
        add     $4096, %rdi
        dec     %ecx
        jnz     1b
        mov     $11, %eax           # munmap
        mov     %rbx, %rdi
        mov     $(16 << 20), %esi
        syscall
        dec     %r12
        jnz     2b
        xor     %edi, %edi
        jmp     8f
9:      mov     $1, %edi
8:      mov     $231, %eax
        syscall
