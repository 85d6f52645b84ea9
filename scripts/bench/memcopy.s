# (b) Memory copy: ROUNDS times, copy a 1 MiB buffer to another with 8-byte loads and
# stores (an unrolled loop of 4, 10 instructions per 32 bytes), alternating direction.
        .globl _start
        .text
_start:
        mov     $ROUNDS, %r12
2:      lea     src(%rip), %rsi
        lea     dst(%rip), %rdi
        test    $1, %r12
        jz      3f
        xchg    %rsi, %rdi
3:      mov     $(1 << 20) / 32, %rcx
1:      mov     (%rsi), %rax
        mov     8(%rsi), %rdx
        mov     %rax, (%rdi)
        mov     %rdx, 8(%rdi)
        mov     16(%rsi), %rax
        mov     24(%rsi), %rdx
        mov     %rax, 16(%rdi)
        mov     %rdx, 24(%rdi)
        add     $32, %rsi
        add     $32, %rdi
        dec     %rcx
        jnz     1b
        dec     %r12
        jnz     2b
        mov     $231, %eax
        xor     %edi, %edi
        syscall
        .bss
        .align  4096
src:    .skip   1 << 20
dst:    .skip   1 << 20
