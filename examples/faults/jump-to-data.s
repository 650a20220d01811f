; Data run as code: z = x + y, then a jump whose target is a DATA slot (x). The ISA's semantics
; stop there with a fault ("executed a DATA slot"); what the neural CPU does is measured in
; docs/embedding-language.md. A program that faults, so it lives here, not in examples/*.s
; (those must run right on the shipped CPU). Debug it and stop where the PC lands on data:
;   llamacpu asm examples/faults/jump-to-data.s -o jump.pt && llamacpu debug jump.pt
;   then x, "PC on a slot that is not an instruction", and c
0000  REG    pc -> 0000                ; program counter
0001  OPDEF  ADD
0002  OPDEF  JMP
0003  OPDEF  HALT
0010  INST   ADD [0020], [0021] -> [0022]
0011  INST   JMP -> 0020
0012  INST   HALT
0020  DATA   3                         ; x
0021  DATA   4                         ; y
0022  DATA   0                         ; z
