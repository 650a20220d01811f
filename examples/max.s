; The maximum of five values: m = x0, then for each x: if m < x then m = x (a forward jump
; over the COPY when not). Code first, the library after it, the list last.
.expect 0070 15
0000  REG    pc -> 0000                ; program counter
0010  INST   COPY [0060] -> [0070]
0011  INST   LT [0070], [0061] -> [0071]
0012  INST   JZ [0071], -> 0014
0013  INST   COPY [0061] -> [0070]
0014  INST   LT [0070], [0062] -> [0071]
0015  INST   JZ [0071], -> 0017
0016  INST   COPY [0062] -> [0070]
0017  INST   LT [0070], [0063] -> [0071]
0018  INST   JZ [0071], -> 0020
0019  INST   COPY [0063] -> [0070]
0020  INST   LT [0070], [0064] -> [0071]
0021  INST   JZ [0071], -> 0023
0022  INST   COPY [0064] -> [0070]
0023  INST   HALT
0030  OPDEF  JZ
0031  OPDEF  LT
0032  OPDEF  COPY
0033  OPDEF  HALT
0060  DATA   7                         ; x0
0061  DATA   3                         ; x1
0062  DATA   15                        ; x2
0063  DATA   9                         ; x3
0064  DATA   12                        ; x4
0070  DATA   0                         ; m (the maximum)
0071  DATA   0                         ; f (m < x)
