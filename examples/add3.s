; 123 + 456 = 579 as the addition compiler never lays it out: all the code first, the digits
; after it, the base and the operator library elsewhere. Per digit: t1 = carry + a,
; t2 = t1 + b, r = t2 mod 10, carry = t2 div 10; then r[3] = carry.
.expect 0045 9
.expect 0051 7
.expect 0057 5
.expect 0063 0
0000  REG    pc -> 0000                ; program counter
0010  INST   ADD [0040], [0041] -> [0043]
0011  INST   ADD [0043], [0042] -> [0044]
0012  INST   MOD [0044], [0090] -> [0045]
0013  INST   DIV [0044], [0090] -> [0046]
0014  INST   ADD [0046], [0047] -> [0049]
0015  INST   ADD [0049], [0048] -> [0050]
0016  INST   MOD [0050], [0090] -> [0051]
0017  INST   DIV [0050], [0090] -> [0052]
0018  INST   ADD [0052], [0053] -> [0055]
0019  INST   ADD [0055], [0054] -> [0056]
0020  INST   MOD [0056], [0090] -> [0057]
0021  INST   DIV [0056], [0090] -> [0058]
0022  INST   COPY [0058] -> [0063]
0023  INST   HALT
0040  DATA   0                         ; carry[0]
0041  DATA   3                         ; a[0]
0042  DATA   6                         ; b[0]
0043  DATA   0                         ; t1[0]
0044  DATA   0                         ; t2[0]
0045  DATA   0                         ; r[0]
0046  DATA   0                         ; carry[1]
0047  DATA   2                         ; a[1]
0048  DATA   5                         ; b[1]
0049  DATA   0                         ; t1[1]
0050  DATA   0                         ; t2[1]
0051  DATA   0                         ; r[1]
0052  DATA   0                         ; carry[2]
0053  DATA   1                         ; a[2]
0054  DATA   4                         ; b[2]
0055  DATA   0                         ; t1[2]
0056  DATA   0                         ; t2[2]
0057  DATA   0                         ; r[2]
0058  DATA   0                         ; carry[3]
0063  DATA   0                         ; r[3]
0090  DATA   10                        ; base
0100  OPDEF  ADD
0101  OPDEF  MOD
0102  OPDEF  DIV
0103  OPDEF  COPY
0104  OPDEF  HALT
