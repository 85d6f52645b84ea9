# (d) fork+exit+wait: ROUNDS times, fork; the child exits at once with status 0, the
# parent waits for it (wait4(-1, NULL, 0, NULL)).
        .globl _start
        .text
_start:
        mov     $ROUNDS, %r12
2:      mov     $57, %eax           # fork
        syscall
        test    %rax, %rax
        js      9f
        jnz     3f
        mov     $231, %eax          # child: exit_group(0)
        xor     %edi, %edi
        syscall
3:      mov     $61, %eax           # wait4(-1, NULL, 0, NULL)
        mov     $-1, %rdi
        xor     %esi, %esi
        xor     %edx, %edx
        xor     %r10d, %r10d
        syscall
        test    %rax, %rax
        js      9f
        dec     %r12
        jnz     2b
        xor     %edi, %edi
        jmp     8f
9:      mov     $1, %edi
8:      mov     $231, %eax
        syscall
