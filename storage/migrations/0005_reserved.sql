-- Reserved: this number belongs to another change that lands separately.
SELECT 1;
