module grapevine

go 1.26.8
