; A countdown: sum = 0; c = 5; while c != 0 { sum = sum + c; c = c - 1 } -> sum = 15.
; Code and data interleaved, one data slot after every instruction.
.expect 0014 15
.expect 0016 0
0000  REG    pc -> 0000                ; program counter
0002  OPDEF  ADD
0003  OPDEF  SUB
0004  OPDEF  JZ
0005  OPDEF  JMP
0006  OPDEF  HALT
0011  INST   JZ [0016], -> 0019
0012  DATA   1                         ; one
0013  INST   ADD [0014], [0016] -> [0014]
0014  DATA   0                         ; sum
0015  INST   SUB [0016], [0012] -> [0016]
0016  DATA   5                         ; c
0017  INST   JMP -> 0011
0018  DATA   0
0019  INST   HALT
