; 3 x 6 by repeated addition: acc = 0; do { acc = acc + a; n = n - 1 } while n != 0
; Code in the middle of memory, data below it, the operator library at the top in no order:
; a layout (and a trip count of 6) that training never showed.
.expect 0041 18
.expect 0042 0
0000  REG    pc -> 0000                ; program counter
0040  DATA   3                         ; a
0041  DATA   0                         ; acc
0042  DATA   6                         ; n (trip count)
0043  DATA   1                         ; one
0100  INST   ADD [0041], [0040] -> [0041]
0101  INST   SUB [0042], [0043] -> [0042]
0102  INST   JNZ [0042], -> 0100
0103  INST   HALT
0200  OPDEF  HALT
0201  OPDEF  JNZ
0202  OPDEF  SUB
0203  OPDEF  ADD
