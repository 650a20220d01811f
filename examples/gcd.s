; The greatest common divisor of 12 and 18 by subtraction:
; while a != b { if a < b then b = b - a else a = a - b } -> a = b = 6.
.expect 0090 6
.expect 0091 6
0000  REG    pc -> 0000                ; program counter
0020  INST   EQ [0090], [0091] -> [0092]
0021  INST   JNZ [0092], -> 0030
0022  INST   LT [0090], [0091] -> [0092]
0023  INST   JZ [0092], -> 0026
0024  INST   SUB [0091], [0090] -> [0091]
0025  INST   JMP -> 0020
0026  INST   SUB [0090], [0091] -> [0090]
0027  INST   JMP -> 0020
0030  INST   HALT
0060  OPDEF  EQ
0061  OPDEF  JNZ
0062  OPDEF  LT
0063  OPDEF  JZ
0064  OPDEF  SUB
0065  OPDEF  JMP
0066  OPDEF  HALT
0090  DATA   12                        ; a
0091  DATA   18                        ; b
0092  DATA   0                         ; f
