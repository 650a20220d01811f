; Fibonacci: (a, b) = (0, 1); six times (a, b) = (b, a + b) -> a = 8, b = 13.
; The library first, data far above the code.
.expect 0120 8
.expect 0121 13
0000  REG    pc -> 0000                ; program counter
0001  OPDEF  JNZ
0002  OPDEF  COPY
0003  OPDEF  SUB
0004  OPDEF  ADD
0005  OPDEF  HALT
0050  INST   ADD [0120], [0121] -> [0122]
0051  INST   COPY [0121] -> [0120]
0052  INST   COPY [0122] -> [0121]
0053  INST   SUB [0123], [0124] -> [0123]
0054  INST   JNZ [0123], -> 0050
0055  INST   HALT
0120  DATA   0                         ; a
0121  DATA   1                         ; b
0122  DATA   0                         ; t
0123  DATA   6                         ; n
0124  DATA   1                         ; one
