module buzhashtable

go 1.19
