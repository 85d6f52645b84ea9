# (a) Integer loop: ITERS iterations of 8 register-only ALU instructions, DEC and the loop
# branch (10 instructions an iteration), then exit_group(0).
        .globl _start
        .text
_start:
        mov     $ITERS, %rcx
        xor     %eax, %eax
        mov     $1, %edx
        mov     $0x9e3779b9, %esi
1:      add     %rdx, %rax
        xor     %rsi, %rdx
        imul    $33, %rax, %rax
        rol     $5, %rdx
        sub     %rcx, %rsi
        lea     7(%rax,%rdx), %r8
        and     $0xffff, %r8
        or      %r8, %rsi
        dec     %rcx
        jnz     1b
        mov     $231, %eax          # exit_group(0)
        xor     %edi, %edi
        syscall
